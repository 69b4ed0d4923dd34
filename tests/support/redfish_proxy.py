"""A thin HTTPS proxy in front of sushy-emulator for hamn's Redfish tests.

It supplies only what the emulator lacks, and forwards everything else to it:
- a SessionService (POST .../Sessions checks the credentials against the emulator,
  answers X-Auth-Token and Location; DELETE ends the session); requests need a token;
- faults a real BMC shows: a ForceOff accepted while nothing happens ("noop-forceoff"),
  and a power state read "On" from a stale cache until a reset is asked for, then a
  409 Conflict for the reset of a system that is already off ("stale-on-409");
- a reset answered 202 Accepted with a task monitor (DSP0266 "Asynchronous
  operations"): the monitor answers 202 twice, then the completed Task ("task"); or a
  task that ends in an Exception while nothing was done ("task-exception");
- no free session: every POST to Sessions is refused with 503 ("no-free-session");
- a maker named by the service root, which the emulator does not name: Vendor "Dell"
  ("vendor-dell"), or only an "Hpe" Oem key, as firmware before ServiceRoot v1.5.0
  ("oem-hpe").
- reset types listed only in an ActionInfo resource, as Supermicro and OpenBMC do
  ("actioninfo"), or listed there without ForceOff ("actioninfo-no-forceoff");
- a root that names no maker and a manager whose Model is "OpenBmc", as bmcweb
  ("model-openbmc").
MODE is a comma-separated list of these.
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
MODES = set(MODE.split(","))
MONITOR = "/redfish/v1/TaskService/TaskMonitors/"
SESSIONS = "/redfish/v1/SessionService/Sessions"
UP = ssl.create_default_context(cafile=UPSTREAM_CA)
LOCK = threading.Lock()
state = {"created": 0, "deleted": 0, "active": 0, "resets": 0, "stale_served": False,
         "task_polls": 0, "action_info_reads": 0}
ACTION_INFO = {
    "@odata.type": "#ActionInfo.v1_1_2.ActionInfo", "Id": "ResetActionInfo",
    "Parameters": [{"Name": "ResetType", "Required": True, "DataType": "String",
                    "AllowableValues": ["On", "ForceOff", "GracefulShutdown",
                                        "GracefulRestart", "ForceRestart", "Nmi"]}],
}
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
            if "vendor-dell" in MODES:
                root["Vendor"] = "Dell"
                root["Product"] = "Integrated Dell Remote Access Controller"
            if "oem-hpe" in MODES:
                root["Oem"] = {"Hpe": {"Manager": [{"ManagerType": "iLO 5"}]}}
            return self.answer(status, json.dumps(root).encode())
        if method == "POST" and path == SESSIONS and "no-free-session" in MODES:
            return self.answer(503, json.dumps({"error": {"@Message.ExtendedInfo": [
                {"Message": "The maximum number of user sessions is reached."}]}}).encode())
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
            if "noop-forceoff" in MODES:
                return self.answer(204)
            if "task" in MODES or "task-exception" in MODES:
                if "task" in MODES:
                    status, raw = upstream(method, path, basic, data)
                    if status >= 300:
                        return self.answer(status, raw)
                task = {"@odata.id": "/redfish/v1/TaskService/Tasks/1", "Id": "1",
                        "TaskState": "Running", "TaskStatus": "OK"}
                return self.answer(202, json.dumps(task).encode(),
                                   [("Location", MONITOR + "1")])
            if "stale-on-409" in MODES:
                system = path.split("/Actions/")[0]
                _, raw = upstream("GET", system, basic)
                if json.loads(raw).get("PowerState") == "Off":
                    return self.answer(
                        409,
                        b'{"error": {"message": "The system is already powered off."}}',
                    )
        if method == "GET" and path.startswith(MONITOR):
            with LOCK:
                state["task_polls"] += 1
                polls = state["task_polls"]
            task = {"@odata.id": "/redfish/v1/TaskService/Tasks/1", "Id": "1",
                    "TaskState": "Running", "TaskStatus": "OK"}
            if "task-exception" in MODES:
                task.update(TaskState="Exception", TaskStatus="Critical", Messages=[
                    {"Message": "Unable to perform the power operation: the server is locked."}])
                return self.answer(200, json.dumps(task).encode())
            if polls < 3:
                return self.answer(202, json.dumps(task).encode())
            task.update(TaskState="Completed")
            return self.answer(200, json.dumps(task).encode())
        actioninfo = "actioninfo" in MODES or "actioninfo-no-forceoff" in MODES
        if actioninfo and method == "GET" and path.endswith("/ResetActionInfo"):
            with LOCK:
                state["action_info_reads"] += 1
            info = json.loads(json.dumps(ACTION_INFO))
            if "actioninfo-no-forceoff" in MODES:
                info["Parameters"][0]["AllowableValues"].remove("ForceOff")
            info["@odata.id"] = path
            return self.answer(200, json.dumps(info).encode())
        status, raw = upstream(method, path, basic, data)
        parts = path.rstrip("/").split("/")
        if actioninfo and method == "GET" and len(parts) == 5 and parts[3] == "Systems":
            sys_json = json.loads(raw)
            reset = sys_json.get("Actions", {}).get("#ComputerSystem.Reset", {})
            reset.pop("ResetType@Redfish.AllowableValues", None)
            reset["@Redfish.ActionInfo"] = path.rstrip("/") + "/ResetActionInfo"
            raw = json.dumps(sys_json).encode()
        if ("model-openbmc" in MODES and method == "GET" and len(parts) == 5
                and parts[3] == "Managers"):
            man = json.loads(raw)
            man["Model"] = "OpenBmc"
            raw = json.dumps(man).encode()
        if ("stale-on-409" in MODES and method == "GET" and "/Systems/" in path
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
