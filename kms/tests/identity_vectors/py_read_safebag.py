# Reads a SafeBag written by `amicn key export --format safebag` with python-ndn's SafeBag and
# certificate models, decrypts its PKCS#8 key with PyCryptodome and signs a Data with it using
# python-ndn's signers; see `python_ndn_reads_amicn_safebags` in ../safebag.rs.
# Usage: py_read_safebag.py FILE PASSPHRASE. Prints the certificate name's TLV (hex) and the
# signed Data (hex), one per line.
import base64
import sys

from Cryptodome.PublicKey import ECC, RSA
from ndn.app_support.security_v2 import CertificateV2Value, SafeBag
from ndn.encoding import Name, make_data, MetaInfo, parse_and_check_tl
from ndn.security import Sha256WithEcdsaSigner, Sha256WithRsaSigner

path, passphrase = sys.argv[1], sys.argv[2]
with open(path, 'rb') as f:
    wire = base64.b64decode(b''.join(f.read().split()))
bag = SafeBag.parse(parse_and_check_tl(wire, 128))
# The SafeBag model holds the certificate Data's TLV-VALUE.
cert = CertificateV2Value.parse(bag.certificate_v2)
cert_name = cert.name
key_name = cert_name[:-2]

der = bytes(bag.encrypted_key_bag)
try:
    key = ECC.import_key(der, passphrase=passphrase)
    signer_class = Sha256WithEcdsaSigner
    public = key.public_key().export_key(format='DER')
    private = key.export_key(format='DER')
except ValueError:
    key = RSA.import_key(der, passphrase=passphrase)
    signer_class = Sha256WithRsaSigner
    public = key.public_key().export_key(format='DER')
    private = key.export_key(format='DER')
if bytes(public) != bytes(cert.content):
    sys.exit('the decrypted key is not the certificate key')

data = make_data('/python/signed/v=1', MetaInfo(), b'signed with a key from an amicn SafeBag',
                 signer_class(key_name, private))
print(bytes(Name.encode(cert_name)).hex())
print(bytes(data).hex())
