#!/usr/bin/env python3
"""python-ndn 0.5 registering a prefix with a command signed by its keychain's key.

  signed_register.py --keychain DIR cert IDENTITY FILE
      creates a python-ndn keychain in DIR (SQLite PIB + file TPM) with IDENTITY, whose
      default key is ECDSA P-256 with a self-signed certificate, and writes that certificate's
      Data wire to FILE
  signed_register.py --keychain DIR register PREFIX
      sends rib/register for PREFIX as a v0.3 signed Interest (make_command_v2, ECDSA with
      SignatureTime and SignatureNonce, as NFD's command authenticator expects) and prints
      "STATUS <code> <text>"; exits 0 when an answer arrived

The transport comes from NDN_CLIENT_TRANSPORT (e.g. unix:///tmp/x/nfd.sock).
"""
import argparse
import os
import sys

from ndn.encoding import Signer


class CommandSigner(Signer):
    """Adds SignatureTime and SignatureNonce to another signer's InterestSignatureInfo."""

    def __init__(self, inner):
        self.inner = inner

    def write_signature_info(self, signature_info):
        from ndn.utils import gen_nonce_64, timestamp

        self.inner.write_signature_info(signature_info)
        signature_info.signature_time = timestamp()
        signature_info.signature_nonce = gen_nonce_64()

    def get_signature_value_size(self):
        return self.inner.get_signature_value_size()

    def write_signature_value(self, wire, contents):
        return self.inner.write_signature_value(wire, contents)


def open_keychain(path: str, create: bool):
    from ndn.security import KeychainSqlite3, TpmFile

    pib = os.path.join(path, "pib.db")
    tpm = os.path.join(path, "ndnsec-key-file")
    if create:
        os.makedirs(tpm, exist_ok=True)
        KeychainSqlite3.initialize(pib, "tpm-file", tpm)
    return KeychainSqlite3(pib, TpmFile(tpm))


def cert(args) -> int:
    kc = open_keychain(args.keychain, create=True)
    identity = kc.touch_identity(args.identity)
    data = identity.default_key().default_cert().data
    with open(args.file, "wb") as f:
        f.write(bytes(data))
    return 0


def register(args) -> int:
    from ndn.app import NDNApp
    from ndn.app_support.nfd_mgmt import ControlResponse, make_command_v2
    from ndn.encoding import Name, parse_and_check_tl

    kc = open_keychain(args.keychain, create=False)
    app = NDNApp(keychain=kc)
    result = {"code": None}

    async def main():
        try:
            name = make_command_v2("rib", "register", None, name=Name.from_str(args.prefix))
            signer = CommandSigner(kc.get_signer({}))
            _, _, reply = await app.express_interest(
                name, app_param=b"", signer=signer, lifetime=2000
            )
            # parse_response() needs a body, which a refusal does not carry.
            cr = ControlResponse.parse(parse_and_check_tl(memoryview(reply), 0x65))
            result["code"] = cr.status_code
            text = cr.status_text or ""
            if not isinstance(text, str):
                text = bytes(text).decode(errors="replace")
            print(f"STATUS {cr.status_code} {text}", flush=True)
        except Exception as e:  # Nack, timeout: reported, the test decides
            print(f"FAILED {e.__class__.__name__}", flush=True)
        finally:
            app.shutdown()

    app.run_forever(after_start=main())
    return 0 if result["code"] is not None else 2


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--keychain", required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cert")
    c.add_argument("identity")
    c.add_argument("file")
    r = sub.add_parser("register")
    r.add_argument("prefix")
    args = p.parse_args()
    return cert(args) if args.cmd == "cert" else register(args)


if __name__ == "__main__":
    sys.exit(main())
