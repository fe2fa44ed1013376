//! The on-disk keychain: permissions, reload, atomic writes, corruption, import/export.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use amicn_kms::Error;
use amicn_kms::identity::verify_data;
use amicn_kms::keychain::{Keychain, decode_export, write_atomic};
use amicn_tlv::{Data, Name};
use bytes::Bytes;

const NOW_S: u64 = 1_795_564_800;

fn n(s: &str) -> Name {
    Name::from_uri(s).unwrap()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let mut rnd = [0u8; 8];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut rnd);
        let p = std::env::temp_dir().join(format!("amicn-kms-{tag}-{}", hex::encode(rnd)));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_are_0600_and_survive_reload() {
    let dir = TempDir::new("reload");
    let root = dir.0.join("kc");
    let (key, cert) = {
        let kc = Keychain::open(&root).unwrap();
        kc.create_identity(&n("/u/ami/meter/7"), NOW_S, 86_400)
            .unwrap()
    };
    assert_eq!(mode(&root), 0o700);
    let key_files: Vec<_> = std::fs::read_dir(root.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(key_files.len(), 1);
    assert_eq!(mode(&key_files[0]), 0o600);
    // No temporary files are left behind.
    for sub in ["keys", "certs", "."] {
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "{name}");
        }
    }

    // A temporary file left by a crash mid-write is not mistaken for a key.
    std::fs::write(
        root.join("keys").join(".abc.key.0011223344556677.tmp"),
        b"partial",
    )
    .unwrap();
    let kc = Keychain::open(&root).unwrap();
    assert_eq!(kc.keys().unwrap(), vec![key.key_name().clone()]);
    assert_eq!(kc.default_key().unwrap().as_ref(), Some(key.key_name()));
    let loaded = kc.key(key.key_name()).unwrap();
    assert_eq!(loaded.public_key(), key.public_key());
    // The reloaded key signs what the old public key verifies.
    let mut d = Data::new(n("/u/ami/meter/7/reading/1"), Bytes::from_static(b"x"));
    let d = Data::decode(loaded.sign_data(&mut d).unwrap()).unwrap();
    verify_data(&d, &key.public_key()).unwrap();
    // Certificates by certificate name and by key name.
    assert_eq!(kc.certificate(cert.name()).unwrap(), cert);
    assert_eq!(kc.certificate(key.key_name()).unwrap(), cert);
    assert_eq!(kc.certificates().unwrap().len(), 1);
    assert!(matches!(
        kc.key(&n("/nobody/KEY/1")),
        Err(Error::KeychainNotFound { what: "key", .. })
    ));
    let (second, _) = kc
        .create_identity(&n("/u/ami/meter/7"), NOW_S, 86_400)
        .unwrap();
    kc.create_identity(&n("/u/ami/KMS"), NOW_S, 86_400).unwrap();
    assert_eq!(
        kc.identities().unwrap(),
        vec![n("/u/ami/KMS"), n("/u/ami/meter/7")]
    );
    let mut mine = vec![key.key_name().clone(), second.key_name().clone()];
    mine.sort();
    assert_eq!(kc.keys_of(&n("/u/ami/meter/7")).unwrap(), mine);
    // The first identity stays the default.
    assert_eq!(kc.default_key().unwrap().as_ref(), Some(key.key_name()));
    kc.delete_key(second.key_name()).unwrap();
    kc.delete_key(&kc.keys_of(&n("/u/ami/KMS")).unwrap()[0])
        .unwrap();
    kc.delete_key(key.key_name()).unwrap();
    assert!(kc.keys().unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_or_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perms");
    let kc = Keychain::open(&dir.0).unwrap();
    let (key, _) = kc
        .create_identity(&n("/u/ami/meter/3"), NOW_S, 86_400)
        .unwrap();
    let path = std::fs::read_dir(dir.0.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600,
        "keys are written private"
    );
    for mode in [0o644, 0o640, 0o602] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match kc.key(key.key_name()) {
            Err(e @ Error::UnsafeKeyPermissions { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&format!("{mode:04o}")), "{text}");
                assert!(text.contains("chmod 600"), "{text}");
            }
            other => panic!("mode {mode:o}: {other:?}"),
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(kc.key(key.key_name()).unwrap().key_name(), key.key_name());
}

#[test]
fn corrupt_files_give_clear_errors() {
    let dir = TempDir::new("corrupt");
    let kc = Keychain::open(&dir.0).unwrap();
    let (key, _) = kc.create_identity(&n("/u/ami/KMS"), NOW_S, 86_400).unwrap();
    let path = std::fs::read_dir(dir.0.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read_to_string(&path).unwrap();

    // Truncated file.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    match kc.key(key.key_name()) {
        Err(Error::KeychainCorrupt { path: p, .. }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    // Secret changed so it no longer matches the public key.
    let mut chars: Vec<char> = good.chars().collect();
    let si = good.find("secret = \"").unwrap() + 10;
    chars[si] = if chars[si] == 'a' { 'b' } else { 'a' };
    std::fs::write(&path, chars.into_iter().collect::<String>()).unwrap();
    match kc.key(key.key_name()) {
        Err(Error::KeychainCorrupt { reason, .. }) => {
            assert!(reason.contains("public key"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // Binary garbage.
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    assert!(matches!(
        kc.key(key.key_name()),
        Err(Error::KeychainCorrupt { .. })
    ));
    assert!(matches!(kc.keys(), Err(Error::KeychainCorrupt { .. })));
    // A corrupt certificate file.
    std::fs::write(&path, &good).unwrap();
    let cpath = std::fs::read_dir(dir.0.join("certs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&cpath, b"\x06\x03abc").unwrap();
    assert!(matches!(
        kc.certificates(),
        Err(Error::KeychainCorrupt { .. })
    ));
    // Errors render as readable messages naming the file.
    let msg = kc.certificates().unwrap_err().to_string();
    assert!(msg.contains("corrupt") && msg.contains(".cert"), "{msg}");
}

#[test]
fn atomic_write_replaces_whole_file() {
    let dir = TempDir::new("atomic");
    let p = dir.0.join("f");
    write_atomic(&p, b"first version", 0o600).unwrap();
    write_atomic(&p, b"2", 0o600).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"2");
    assert_eq!(mode(&p), 0o600);
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
    // Writing into a missing directory fails cleanly.
    assert!(matches!(
        write_atomic(&dir.0.join("missing/f"), b"x", 0o600),
        Err(Error::KeychainIo { .. })
    ));
}

#[test]
fn export_import_plain_and_with_passphrase() {
    let dir = TempDir::new("export");
    let a = Keychain::open(dir.0.join("a")).unwrap();
    let (key, cert) = a
        .create_identity(&n("/u/ami/meter/9"), NOW_S, 86_400)
        .unwrap();

    let plain = a.export_identity(key.key_name(), None, 0).unwrap();
    assert!(plain.contains("amicn-identity-v1"));
    let b = Keychain::open(dir.0.join("b")).unwrap();
    assert_eq!(b.import_identity(&plain, None).unwrap(), *key.key_name());
    assert_eq!(
        b.key(key.key_name()).unwrap().public_key(),
        key.public_key()
    );
    assert_eq!(b.certificate(key.key_name()).unwrap(), cert);

    // Too few PBKDF2 iterations are refused on export.
    let few = a.export_identity(key.key_name(), Some("correct horse"), 1000);
    assert!(
        matches!(&few, Err(Error::Import(m)) if m.contains("below the minimum")),
        "{few:?}"
    );
    let enc = a
        .export_identity(
            key.key_name(),
            Some("correct horse"),
            amicn_kms::keychain::MIN_EXPORT_ITERATIONS,
        )
        .unwrap();
    assert!(!enc.contains(&hex::encode(key.seed().as_ref())));
    assert!(matches!(
        decode_export(&enc, Some("wrong")),
        Err(Error::WrongPassphrase)
    ));
    assert!(matches!(decode_export(&enc, None), Err(Error::Import(_))));
    let (k2, c2) = decode_export(&enc, Some("correct horse")).unwrap();
    assert_eq!(k2.public_key(), key.public_key());
    assert_eq!(c2, cert);
    // A modified ciphertext is detected.
    let i = enc.find("ciphertext = \"").unwrap() + 14;
    let mut t = enc.clone();
    let c = if &t[i..i + 1] == "0" { "1" } else { "0" };
    t.replace_range(i..i + 1, c);
    assert!(matches!(
        decode_export(&t, Some("correct horse")),
        Err(Error::WrongPassphrase)
    ));
    // A certificate of another key is refused.
    let (other, _) = a
        .create_identity(&n("/u/ami/meter/10"), NOW_S, 86_400)
        .unwrap();
    let other_cert_hex = hex::encode(a.certificate(other.key_name()).unwrap().to_wire());
    let own_cert_hex = hex::encode(cert.to_wire());
    let mixed = plain.replace(&own_cert_hex, &other_cert_hex);
    assert!(matches!(decode_export(&mixed, None), Err(Error::Import(_))));
    assert!(decode_export("not toml at all [", None).is_err());
}
