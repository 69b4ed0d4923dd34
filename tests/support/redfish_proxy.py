"""A thin HTTPS proxy in front of sushy-emulator for hamn's Redfish tests.

It supplies only what the emulator lacks, and forwards everything else to it:
- a SessionService (POST .../Sessions checks the credentials against the emulator,
  answers X-Auth-Token and Location; DELETE ends the session); requests need a token;
- faults a real BMC shows: a ForceOff accepted while nothing happens ("noop-forceoff"),
  and a power state read "On" from a stale cache until a reset is asked for, then a
  409 Conflict for the reset of a system that is already off ("stale-on-409").
It writes what it saw (sessions created, deleted, resets) to a JSON file after each
request, for the test to check.

usage: redfish_proxy.py PORT UPSTREAM_URL CERT KEY UPSTREAM_CA STATE_FILE MODE
"""

import base64
import http.server
import json
import os
import secrets
import ssl
import sys
import threading
import urllib.error
import urllib.request

PORT, UPSTREAM, CERT, KEY, UPSTREAM_CA, STATE, MODE = sys.argv[1:8]
SESSIONS = "/redfish/v1/SessionService/Sessions"
UP = ssl.create_default_context(cafile=UPSTREAM_CA)
LOCK = threading.Lock()
state = {"created": 0, "deleted": 0, "active": 0, "resets": 0, "stale_served": False}
sessions = {}  # token -> (id, basic auth header)


def save():
    # Whole or not at all: the test reads it the moment hamn has exited.
    with open(STATE + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(STATE + ".tmp", STATE)


def upstream(method, path, basic, body=None):
    req = urllib.request.Request(UPSTREAM + path, data=body, method=method)
    req.add_header("Authorization", basic)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=UP, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("proxy: " + (fmt % args) + "\n")

    def answer(self, status, body=b"", headers=()):
        # Recorded before the answer leaves: the client may act on it at once.
        with LOCK:
            save()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else None

    def session(self):
        with LOCK:
            return sessions.get(self.headers.get("X-Auth-Token", ""))

    def handle_any(self, method):
        data = self.body()
        path = self.path
        if method == "GET" and path.rstrip("/") == "/redfish/v1":
            status, raw = upstream("GET", path, "")
            root = json.loads(raw)
            root["SessionService"] = {"@odata.id": "/redfish/v1/SessionService"}
            root.setdefault("Links", {})["Sessions"] = {"@odata.id": SESSIONS}
            return self.answer(status, json.dumps(root).encode())
        if method == "POST" and path == SESSIONS:
            creds = json.loads(data or b"{}")
            raw = "%s:%s" % (creds.get("UserName", ""), creds.get("Password", ""))
            basic = "Basic " + base64.b64encode(raw.encode()).decode()
            status, _ = upstream("GET", "/redfish/v1/Systems", basic)
            if status != 200:
                return self.answer(401, b'{"error": {"message": "bad credentials"}}')
            token = secrets.token_hex(16)
            with LOCK:
                state["created"] += 1
                state["active"] += 1
                sid = str(state["created"])
                sessions[token] = (sid, basic)
            location = SESSIONS + "/" + sid
            return self.answer(
                201,
                json.dumps({"Id": sid, "@odata.id": location}).encode(),
                [("X-Auth-Token", token), ("Location", location)],
            )
        s = self.session()
        if s is None:
            return self.answer(401, b'{"error": {"message": "no session"}}')
        sid, basic = s
        if method == "DELETE" and path == SESSIONS + "/" + sid:
            with LOCK:
                del sessions[self.headers["X-Auth-Token"]]
                state["deleted"] += 1
                state["active"] -= 1
            return self.answer(204)
        if method == "POST" and path.endswith("ComputerSystem.Reset"):
            with LOCK:
                state["resets"] += 1
            if MODE == "noop-forceoff":
                return self.answer(204)
            if MODE == "stale-on-409":
                system = path.split("/Actions/")[0]
                _, raw = upstream("GET", system, basic)
                if json.loads(raw).get("PowerState") == "Off":
                    return self.answer(
                        409,
                        b'{"error": {"message": "The system is already powered off."}}',
                    )
        status, raw = upstream(method, path, basic, data)
        if (MODE == "stale-on-409" and method == "GET" and "/Systems/" in path
                and not state["resets"]):
            sys_json = json.loads(raw)
            if "PowerState" in sys_json:
                sys_json["PowerState"] = "On"
                raw = json.dumps(sys_json).encode()
                with LOCK:
                    state["stale_served"] = True
        return self.answer(status, raw)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
save()
server.serve_forever()
