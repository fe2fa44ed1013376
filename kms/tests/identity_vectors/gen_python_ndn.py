# Generates Ed25519-signed packets with python-ndn 0.5.2 for kms/tests/identity_golden.rs.
from datetime import datetime, timezone
from Cryptodome.PublicKey import ECC
from ndn.encoding import Name, Component, MetaInfo, InterestParam, make_data, make_interest
from ndn.security.signer.ed25519_signer import Ed25519Signer
from ndn.app_support.security_v2 import new_cert

PK8 = bytes.fromhex('302e020100300506032b657004220420')
def key(seed):
    der = PK8 + bytes([seed]) * 32
    pub = ECC.import_key(der).public_key().export_key(format='DER')
    return der, pub

root_der, root_pub = key(0x33)
meter_der, meter_pub = key(0x44)
root_key = Name.from_str('/example/KEY/%01%02')
meter_key = Name.from_str('/example/ami/meter/7/KEY/%0A%0B')
t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
t1 = datetime(2030, 1, 1, tzinfo=timezone.utc)
_, root_cert = new_cert(root_key, Component.from_str('self'), root_pub, Ed25519Signer(root_key, root_der), t0, t1)
_, meter_cert = new_cert(meter_key, Component.from_str('root'), meter_pub, Ed25519Signer(root_key, root_der), t0, t1)
data = make_data('/example/ami/meter/7/reading/1', MetaInfo(freshness_period=900000), b'kWh=42',
                 signer=Ed25519Signer(meter_key, meter_der))
interest = make_interest('/example/ami/meter/7/cmd/read', InterestParam(lifetime=4000), app_param=b'now',
                         signer=Ed25519Signer(meter_key, meter_der))
print('# python-ndn 0.5.2, Ed25519 seeds 0x33 (root) and 0x44 (meter); validity 2026-01-01..2030-01-01')
print('root-cert', bytes(root_cert).hex())
print('meter-cert', bytes(meter_cert).hex())
print('data', bytes(data).hex())
print('interest', bytes(interest).hex())
