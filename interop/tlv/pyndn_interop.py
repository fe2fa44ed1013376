#!/usr/bin/env python3
"""Cross-implementation checks between amicn's codec and python-ndn 0.5.2.

  encode   print JSON {case: {"hex": <packet>, ...fields}} for packets python-ndn builds
  decode   read JSON {case: hex} on stdin (packets amicn built), print what python-ndn decodes
  version  print the python-ndn version

Exit status 3 when python-ndn is not importable, so the caller can tell "missing" from "broken".
"""
import json
import sys

try:
    import ndn
    from ndn.encoding import (Component, InterestParam, MetaInfo, Name, SignatureType, make_data,
                              make_interest, parse_data, parse_interest)
    from ndn.encoding.ndn_format_0_3 import (InterestPacket, InterestPacketValue, Links,
                                             SignatureInfo)
    from ndn.encoding.ndnlp_v2 import LpPacket, LpPacketValue, NetworkNack, parse_lp_packet_v2
    from ndn.encoding.tlv_var import shrink_length
    from ndn.app_support.nfd_mgmt import ControlParameters, ControlParametersValue
    from ndn.security.signer.sha256_digest_signer import DigestSha256Signer
except ImportError as e:  # pragma: no cover
    print(f"python-ndn not available: {e}", file=sys.stderr)
    sys.exit(3)

URIS = [
    "/localhost/nfd/rib/register",
    "/a/b%20c/%00%01%FF",
    "/ami/meter-4711/seg=3",
    "/ami/v=1700000000000/t=42/seq=7/off=9",
    "/x/32=metadata",
    "/x/100=abc",
    "/x/sha256digest=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "/x/params-sha256=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    # "/...." is left out on purpose: python-ndn reads "..." forms literally, the spec does not.
    "/a~b_c-d.e",
    "/%2F%3F%23",
]

SIG_NONCE = 0x0102030405060708
SIG_TIME = 1_700_000_000_123


class FixedDigestSigner(DigestSha256Signer):
    """DigestSha256 with a fixed SignatureNonce and SignatureTime so outputs are reproducible."""

    def __init__(self):
        super().__init__(for_interest=True)

    def write_signature_info(self, signature_info):
        signature_info.signature_type = SignatureType.DIGEST_SHA256
        signature_info.key_locator = None
        signature_info.signature_time = SIG_TIME
        signature_info.signature_nonce = SIG_NONCE


def hexs(b):
    return bytes(b).hex()


def encode():
    out = {}
    # Plain Interest with every selector.
    p = InterestParam(can_be_prefix=True, must_be_fresh=True, nonce=0x01020304, lifetime=2500,
                      hop_limit=17, forwarding_hint=["/isp/a", "/isp/b"])
    out["interest"] = {"hex": hexs(make_interest("/ami/meter-4711/power/seq=42", p)),
                       "name": "/ami/meter-4711/power/seq=42", "can_be_prefix": True,
                       "must_be_fresh": True, "nonce": 0x01020304, "lifetime": 2500,
                       "hop_limit": 17, "forwarding_hint": ["/isp/a", "/isp/b"]}
    # Interest with ApplicationParameters (params-sha256 appended by python-ndn).
    p = InterestParam(nonce=7, lifetime=4000)
    out["interest_params"] = {"hex": hexs(make_interest("/ami/cmd", p, app_param=b"hello")),
                              "app_param": hexs(b"hello")}
    # v0.3 signed Interest, DigestSha256 with nonce and time (like appv2 commands).
    ip = InterestPacket()
    ip.interest = InterestPacketValue()
    ip.interest.name = "/localhost/nfd/rib/register"
    ip.interest.nonce = 0x0A0B0C0D
    ip.interest.lifetime = 1000
    ip.interest.application_parameters = b""
    ip.interest.signature_info = SignatureInfo()
    markers = {}
    ip._signer.set_arg(markers, FixedDigestSigner())
    wire = ip.encode(markers=markers)
    shrink = ip.interest._shrink_len.get_arg(markers["interest##inner_markers"])
    if shrink > 0:
        wire = shrink_length(wire, shrink)
    out["signed_interest"] = {"hex": hexs(wire), "sig_type": 0, "sig_nonce": SIG_NONCE,
                              "sig_time": SIG_TIME}
    # Data with MetaInfo and DigestSha256.
    mi = MetaInfo(content_type=0, freshness_period=1000,
                  final_block_id=Component.from_segment(9))
    out["data"] = {"hex": hexs(make_data("/ami/meter-4711/v=5/seg=9", mi, b"reading:42",
                                         signer=DigestSha256Signer())),
                   "name": "/ami/meter-4711/v=5/seg=9", "freshness": 1000, "content": hexs(b"reading:42")}
    # LpPacket: Nack(NoRoute) + PitToken around an Interest.
    interest = make_interest("/ami/x", InterestParam(nonce=99, lifetime=4000))
    lp = LpPacket()
    lp.lp_packet = LpPacketValue()
    lp.lp_packet.pit_token = bytes([0xE0, 0x47, 1, 2, 3, 4])
    lp.lp_packet.nack = NetworkNack()
    lp.lp_packet.nack.nack_reason = 150
    lp.lp_packet.fragment = interest
    out["lp_nack"] = {"hex": hexs(lp.encode()), "pit_token": "e04701020304", "nack_reason": 150,
                      "fragment": hexs(interest)}
    # ControlParameters as NDNts/python-ndn put them in a rib/register command.
    cp = ControlParameters()
    cp.cp = ControlParametersValue()
    cp.cp.name = "/cap/python"
    cp.cp.face_id = 260
    cp.cp.origin = 65
    cp.cp.cost = 10
    cp.cp.flags = 2
    cp.cp.expiration_period = 1_200_000
    out["control_parameters"] = {"hex": hexs(cp.encode()), "name": "/cap/python", "face_id": 260,
                                 "origin": 65, "cost": 10, "flags": 2, "expiration_period": 1_200_000}
    out["uris"] = {u: {"hex": hexs(Name.to_bytes(Name.from_str(u))),
                       "canonical": Name.to_str(Name.from_str(u))} for u in URIS}
    print(json.dumps(out, indent=1, sort_keys=True))


def decode():
    req = json.load(sys.stdin)
    out = {}
    for case, h in req.items():
        wire = bytes.fromhex(h)
        try:
            if case.startswith("interest"):
                name, p, app, sig = parse_interest(wire)
                r = {"name": Name.to_str(name), "can_be_prefix": p.can_be_prefix,
                     "must_be_fresh": p.must_be_fresh, "nonce": p.nonce, "lifetime": p.lifetime,
                     "hop_limit": p.hop_limit,
                     "forwarding_hint": [Name.to_str(n) for n in p.forwarding_hint],
                     "app_param": None if app is None else hexs(app)}
                if sig.signature_info is not None:
                    import hashlib
                    covered = b"".join(bytes(x) for x in sig.signature_covered_part)
                    r["sig_type"] = sig.signature_info.signature_type
                    r["sig_nonce"] = sig.signature_info.signature_nonce
                    r["sig_time"] = sig.signature_info.signature_time
                    r["sig_ok"] = hashlib.sha256(covered).digest() == bytes(sig.signature_value_buf)
                if sig.digest_value_buf is not None:
                    import hashlib
                    covered = b"".join(bytes(x) for x in sig.digest_covered_part)
                    r["params_digest_ok"] = hashlib.sha256(covered).digest() == bytes(sig.digest_value_buf)
            elif case.startswith("data"):
                import hashlib
                name, mi, content, sig = parse_data(wire)
                covered = b"".join(bytes(x) for x in sig.signature_covered_part)
                r = {"name": Name.to_str(name), "freshness": mi.freshness_period,
                     "content_type": mi.content_type,
                     "final_block_id": None if mi.final_block_id is None else Component.to_str(mi.final_block_id),
                     "content": None if content is None else hexs(content),
                     "sig_type": sig.signature_info.signature_type,
                     "sig_ok": hashlib.sha256(covered).digest() == bytes(sig.signature_value_buf)}
            elif case.startswith("lp"):
                v = parse_lp_packet_v2(wire)
                r = {"pit_token": None if v.pit_token is None else hexs(v.pit_token),
                     "nack_reason": None if v.nack is None else v.nack.nack_reason,
                     "congestion_mark": v.congestion_mark,
                     "fragment": None if v.fragment is None else hexs(v.fragment)}
            elif case.startswith("cp"):
                c = ControlParameters.parse(wire).cp
                r = {"name": Name.to_str(c.name), "face_id": c.face_id, "origin": c.origin,
                     "cost": c.cost, "flags": c.flags, "expiration_period": c.expiration_period,
                     "uri": c.uri}
            elif case.startswith("name"):
                n = Name.from_bytes(wire)
                r = {"uri": Name.to_str(n)}
            else:
                r = {"error": "unknown case"}
        except Exception as e:  # report, the Rust side asserts
            r = {"error": f"{type(e).__name__}: {e}"}
        out[case] = r
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "encode"
    if cmd == "encode":
        encode()
    elif cmd == "decode":
        decode()
    elif cmd == "version":
        print(ndn.__version__ if hasattr(ndn, "__version__") else "unknown")
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
