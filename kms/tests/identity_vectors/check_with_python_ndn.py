# Verifies packets made by amicn-kms (`label hex` lines, file given as the first argument; see
# `python_ndn_verifies_our_packets` in ../identity_golden.rs) with python-ndn 0.5.2 and
# PyCryptodome. Any failed check raises, so the exit status is non-zero.
import sys
from Cryptodome.PublicKey import ECC
from Cryptodome.Signature import eddsa
from ndn.encoding import parse_data, parse_interest
from ndn.app_support.security_v2 import parse_certificate
from ndn.encoding import Name
vals = dict(l.split() for l in open(sys.argv[1] if len(sys.argv) > 1 else '/tmp/ours.txt') if l.strip())
b = {k: bytes.fromhex(v) for k, v in vals.items()}
def ver(pub_der, covered, sig):
    eddsa.new(ECC.import_key(pub_der), 'rfc8032').verify(b''.join(bytes(c) for c in covered), bytes(sig))
root = parse_certificate(b['root-cert']); meter = parse_certificate(b['meter-cert'])
print('root', Name.to_str(root.name), root.meta_info.content_type, root.meta_info.freshness_period,
      bytes(root.signature_info.validity_period.not_before), bytes(root.signature_info.validity_period.not_after))
for name, cert_wire, key in [('root', b['root-cert'], root), ('meter', b['meter-cert'], root)]:
    n, meta, content, sig = parse_data(cert_wire, with_tl=True)
    ver(bytes(key.content), sig.signature_covered_part, sig.signature_value_buf); print(name, 'cert signature ok')
n, meta, content, sig = parse_data(b['data'], with_tl=True)
ver(bytes(meter.content), sig.signature_covered_part, sig.signature_value_buf); print('data ok', Name.to_str(n), Name.to_str(sig.signature_info.key_locator.name))
n, param, app, sig = parse_interest(b['interest'], with_tl=True)
print('interest', Name.to_str(n), sig.signature_info.signature_type, sig.signature_info.signature_nonce, sig.signature_info.signature_time)
ver(bytes(meter.content), sig.signature_covered_part, sig.signature_value_buf); print('interest ok')
print('digest ok', bytes(sig.digest_value_buf) == __import__('hashlib').sha256(b''.join(bytes(c) for c in sig.digest_covered_part)).digest())
