# Signs certificates and Data with python-ndn 0.5.2 (PyCryptodome keys) for amicn to verify; see
# `amicn_verifies_python_ndn_ecdsa_and_rsa` in ../python_ndn_signatures.rs. Prints `label hex`
# lines: a self-signed certificate and a Data signed by it, for ECDSA P-256 and RSA 2048.
from Cryptodome.PublicKey import ECC, RSA
from ndn.app_support.security_v2 import self_sign
from ndn.encoding import Name, MetaInfo, make_data
from ndn.security import Sha256WithEcdsaSigner, Sha256WithRsaSigner

keys = {
    'ecdsa': (ECC.generate(curve='P-256'), Sha256WithEcdsaSigner),
    'rsa': (RSA.generate(2048), Sha256WithRsaSigner),
}
for label, (key, signer_class) in keys.items():
    key_name = Name.from_str(f'/py/{label}/KEY/k1')
    private_der = key.export_key(format='DER')
    public_der = key.public_key().export_key(format='DER')
    cert_name, cert = self_sign(key_name, public_der, signer_class(key_name, private_der))
    data = make_data(f'/py/{label}/data/v=1/seg=0', MetaInfo(final_block_id=b'\x32\x01\x00'),
                     f'signed by python-ndn {label}'.encode(), signer_class(cert_name, private_der))
    print(f'{label}-cert', bytes(cert).hex())
    print(f'{label}-data', bytes(data).hex())
