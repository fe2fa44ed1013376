# Makes python-ndn file-TPM keys (an EC P-256 and an RSA 2048 key, stored as python-ndn stores
# them: base64 SEC1 / PKCS#1 DER in `<sha256(key name)>.privkey`) with self-signed certificates;
# see `python_ndn_tpm_keys_import` in ../safebag.rs.
# Usage: py_tpm_keys.py DIR. Prints `label key-file certificate-hex` lines.
import os
import sys

from ndn.app_support.security_v2 import self_sign
from ndn.encoding import Name
from ndn.security.tpm.tpm_file import TpmFile

out = sys.argv[1]
tpm = TpmFile(out)
for label, key_type in [('ec', 'ec'), ('rsa', 'rsa')]:
    key_name, public = tpm.generate_key(Name.from_str(f'/py/tpm-{label}'), key_type)
    _, cert = self_sign(key_name, public, tpm.get_signer(key_name))
    key_file = os.path.join(out, TpmFile._to_file_name(Name.to_bytes(key_name)))
    print(label, key_file, bytes(cert).hex())
