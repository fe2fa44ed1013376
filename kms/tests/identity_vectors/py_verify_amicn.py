# Verifies Data signed by amicn (`label hex` lines in the file given as the first argument; see
# `python_ndn_verifies_amicn_ecdsa_and_ed25519` in ../python_ndn_signatures.rs) with python-ndn
# 0.5.2's own verifiers. Prints one line per check; any failure exits non-zero.
import sys
from Cryptodome.PublicKey import ECC
from ndn.app_support.security_v2 import parse_certificate
from ndn.encoding import Name, parse_data
from ndn.security.validator.known_key_validator import verify_ecdsa, verify_ed25519

b = {k: bytes.fromhex(v) for k, v in (l.split() for l in open(sys.argv[1]) if l.strip())}
checks = {'ecdsa': verify_ecdsa, 'ed25519': verify_ed25519}
for label, verify in checks.items():
    cert = parse_certificate(b[f'{label}-cert'])
    key = ECC.import_key(bytes(cert.content))
    _, _, _, sig = parse_data(b[f'{label}-cert'], with_tl=True)
    assert verify(key, sig), f'{label} certificate'
    name, _, content, sig = parse_data(b[f'{label}-data'], with_tl=True)
    assert verify(key, sig), f'{label} data'
    print(label, 'ok', Name.to_str(name), sig.signature_info.signature_type, bytes(content).decode())
    bad = bytearray(b[f'{label}-data'])
    i = bad.find(b'amicn')
    bad[i] ^= 1
    _, _, _, sig = parse_data(bad, with_tl=True)
    print(label, 'tampered refused', not verify(key, sig))
