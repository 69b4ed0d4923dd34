# Independent implementation of IPMI 2.0 RAKP-HMAC-SHA256 / HMAC-SHA256-128 key derivation
# (IPMI 2.0 rev 1.1 sections 13.28-13.32, errata 4 for suite 17), to produce known answers.
import hmac, hashlib, struct
H = hashlib.sha256
kuid = b"hamn-test-pw"
sidm = 0x11223344   # remote console session id
sidc = 0xa0b0c0d0   # managed system session id
rm = bytes(range(0x00, 0x10))
rc = bytes(range(0x10, 0x20))
guid = bytes(range(0x20, 0x30))
role = 0x14
uname = b"admin"
le = lambda x: struct.pack("<I", x)
rakp2 = hmac.new(kuid, le(sidm)+le(sidc)+rm+rc+guid+bytes([role, len(uname)])+uname, H).digest()
rakp3 = hmac.new(kuid, rc+le(sidm)+bytes([role, len(uname)])+uname, H).digest()
sik = hmac.new(kuid, rm+rc+bytes([role, len(uname)])+uname, H).digest()
rakp4 = hmac.new(sik, rm+le(sidc)+guid, H).digest()[:16]
k1 = hmac.new(sik, b"\x01"*32, H).digest()
k2 = hmac.new(sik, b"\x02"*32, H).digest()
covered = bytes([0x06, 0xc0]) + le(sidc) + le(1) + struct.pack("<H", 0) + bytes([0xff,0xff,2,7])
auth = hmac.new(k1, covered, H).digest()[:16]
for n, v in [("rakp2", rakp2), ("rakp3", rakp3), ("sik", sik), ("rakp4", rakp4), ("k1", k1), ("k2", k2), ("auth", auth)]:
    print(n, v.hex())
