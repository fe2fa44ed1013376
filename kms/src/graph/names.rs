//! Names of keys and wrap objects in the key graph, following DESIGN.md § Naming.
//!
//! Every key is named with its epoch as a version component (`v=<epoch>`):
//!
//! | key | name |
//! | --- | --- |
//! | user key (tree leaf) | `/<u>/ami/meter/<id>/KEK/v=<e>` |
//! | subgroup tree node | `/<u>/ami/KMS/tree/<subgroup>/node/<height>.<pos>/KEK/v=<e>` |
//! | DR project key | `/<u>/ami/dr/<project>/KEK/v=<e>` |
//! | broadcast (root) key | `/<u>/ami/bcast/KEK/v=<e>` |
//!
//! A wrap of key `K` under key `C` is named `<K name>/ENCRYPTED-BY<C name>`. Tree nodes are
//! identified by (height above the leaves, position within that level), which stays stable when a
//! tree grows a new level on top.
//!
//! Names are kept as URI strings here; the AEAD associated data of a wrap is the UTF-8 bytes of
//! the URI exactly as written by this module (subgroup labels keep `+` unescaped, whereas the
//! canonical NDN URI of the same Name writes `%2B`). Publishers convert with [`to_ndn_name`].

/// Subgroup label of meters that subscribe to no DR project.
pub const BASE_SUBGROUP: &str = "base";

/// Which key of the graph a name refers to (without epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyRef<'a> {
    /// A meter's user key (a tree leaf).
    Meter(u32),
    /// An interior node of a subgroup tree (height ≥ 1).
    Node {
        /// Subgroup label.
        subgroup: &'a str,
        /// Height above the leaves.
        height: u8,
        /// Position within the level.
        pos: u32,
    },
    /// A DR project (group) key.
    Project(&'a str),
    /// The broadcast (root) key.
    Root,
}

/// Appends the name of `key` at `epoch` under utility prefix `prefix` to `out`.
pub fn write_key_name(out: &mut String, prefix: &str, key: KeyRef<'_>, epoch: u32) {
    // A batch rekey writes two key names per wrap (tens of thousands per epoch), so the digits
    // are written directly rather than through the formatting machinery.
    out.push_str(prefix);
    match key {
        KeyRef::Meter(id) => {
            out.push_str("/ami/meter/");
            push_decimal(out, id);
        }
        KeyRef::Node {
            subgroup,
            height,
            pos,
        } => {
            out.push_str("/ami/KMS/tree/");
            out.push_str(subgroup);
            out.push_str("/node/");
            push_decimal(out, u32::from(height));
            out.push('.');
            push_decimal(out, pos);
        }
        KeyRef::Project(p) => {
            out.push_str("/ami/dr/");
            out.push_str(p);
        }
        KeyRef::Root => out.push_str("/ami/bcast"),
    }
    out.push_str("/KEK/v=");
    push_decimal(out, epoch);
}

/// Appends `v` in decimal, without leading zeros.
fn push_decimal(out: &mut String, mut v: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        // `v % 10` is a single digit.
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

/// The name of `key` at `epoch`.
pub fn key_name(prefix: &str, key: KeyRef<'_>, epoch: u32) -> String {
    let mut s = String::with_capacity(64);
    write_key_name(&mut s, prefix, key, epoch);
    s
}

/// The name of the wrap of `target` (at `target_epoch`) under `by` (at `by_epoch`).
pub fn wrap_name(
    prefix: &str,
    target: KeyRef<'_>,
    target_epoch: u32,
    by: KeyRef<'_>,
    by_epoch: u32,
) -> String {
    let mut s = String::with_capacity(128);
    write_key_name(&mut s, prefix, target, target_epoch);
    s.push_str("/ENCRYPTED-BY");
    write_key_name(&mut s, prefix, by, by_epoch);
    s
}

/// Splits a wrap name into (wrapped key name, wrapping key name).
pub fn split_wrap_name(name: &str) -> Option<(&str, &str)> {
    let i = name.find("/ENCRYPTED-BY/")?;
    Some((&name[..i], &name[i + "/ENCRYPTED-BY".len()..]))
}

/// The name of the signed manifest of `epoch`.
pub fn manifest_name(prefix: &str, epoch: u32) -> String {
    format!("{prefix}/ami/KMS/rekey/{epoch}")
}

/// Subgroup label for a sorted set of DR project names (`p1+p2`, or [`BASE_SUBGROUP`]).
pub fn subgroup_label<S: AsRef<str>>(projects: &[S]) -> String {
    if projects.is_empty() {
        return BASE_SUBGROUP.to_string();
    }
    let mut s = String::new();
    for (i, p) in projects.iter().enumerate() {
        if i > 0 {
            s.push('+');
        }
        s.push_str(p.as_ref());
    }
    s
}

/// The DR projects encoded in a subgroup label.
pub fn label_projects(label: &str) -> Vec<&str> {
    if label == BASE_SUBGROUP {
        Vec::new()
    } else {
        label.split('+').collect()
    }
}

/// Parses one of these names into an NDN [`amicn_tlv::Name`] (`v=` becomes a
/// VersionNameComponent), e.g. to publish a wrap as a Data packet.
pub fn to_ndn_name(uri: &str) -> amicn_tlv::Result<amicn_tlv::Name> {
    amicn_tlv::Name::from_uri(uri)
}

/// Checks that a DR project name can serve as a name component and inside a subgroup label.
pub fn valid_project_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 bytes");
    }
    if name == BASE_SUBGROUP {
        return Err("reserved for the no-project subgroup");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("only ASCII letters, digits, '-' and '_' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_match_decimal_formatting() {
        for v in [0u32, 1, 9, 10, 99, 100, 1_000_000, 4_294_967_295] {
            let mut s = String::from("x");
            push_decimal(&mut s, v);
            assert_eq!(s, format!("x{v}"));
        }
        let n = key_name(
            "/u",
            KeyRef::Node {
                subgroup: "a+b",
                height: 255,
                pos: u32::MAX,
            },
            0,
        );
        assert_eq!(n, "/u/ami/KMS/tree/a+b/node/255.4294967295/KEK/v=0");
        assert_eq!(key_name("/u", KeyRef::Root, 10), "/u/ami/bcast/KEK/v=10");
        assert_eq!(
            key_name("/u", KeyRef::Project("p1"), 3),
            "/u/ami/dr/p1/KEK/v=3"
        );
    }

    #[test]
    fn names_follow_the_design() {
        let p = "/example-utility";
        assert_eq!(
            key_name(p, KeyRef::Meter(42), 7),
            "/example-utility/ami/meter/42/KEK/v=7"
        );
        assert_eq!(
            key_name(
                p,
                KeyRef::Node {
                    subgroup: "p1+p2",
                    height: 3,
                    pos: 17
                },
                9
            ),
            "/example-utility/ami/KMS/tree/p1+p2/node/3.17/KEK/v=9"
        );
        assert_eq!(
            key_name(p, KeyRef::Project("p1"), 2),
            "/example-utility/ami/dr/p1/KEK/v=2"
        );
        assert_eq!(
            key_name(p, KeyRef::Root, 2),
            "/example-utility/ami/bcast/KEK/v=2"
        );
        let w = wrap_name(
            p,
            KeyRef::Root,
            5,
            KeyRef::Node {
                subgroup: "base",
                height: 1,
                pos: 0,
            },
            4,
        );
        assert_eq!(
            w,
            "/example-utility/ami/bcast/KEK/v=5/ENCRYPTED-BY/example-utility/ami/KMS/tree/base/node/1.0/KEK/v=4"
        );
        assert_eq!(
            split_wrap_name(&w),
            Some((
                "/example-utility/ami/bcast/KEK/v=5",
                "/example-utility/ami/KMS/tree/base/node/1.0/KEK/v=4"
            ))
        );
        assert_eq!(manifest_name(p, 12), "/example-utility/ami/KMS/rekey/12");
    }

    #[test]
    fn names_parse_as_ndn_names() {
        let p = "/example-utility";
        let w = wrap_name(
            p,
            KeyRef::Project("peak-shave_2"),
            12,
            KeyRef::Node {
                subgroup: "p1+p2",
                height: 2,
                pos: 5,
            },
            11,
        );
        let n = to_ndn_name(&w).unwrap_or_default();
        assert_eq!(n.len(), 16);
        assert_eq!(n.get(5).and_then(|c| c.as_version()), Some(12));
        assert_eq!(n.get(15).and_then(|c| c.as_version()), Some(11));
        assert_eq!(
            n.get(11).map(|c| c.value().to_vec()),
            Some(b"p1+p2".to_vec())
        );
        // The canonical URI escapes '+'; it names the same packet.
        assert_eq!(to_ndn_name(&n.to_string()).unwrap_or_default(), n);
    }

    #[test]
    fn labels_round_trip() {
        assert_eq!(subgroup_label::<&str>(&[]), "base");
        assert_eq!(subgroup_label(&["a", "b"]), "a+b");
        assert_eq!(label_projects("a+b"), vec!["a", "b"]);
        assert!(label_projects("base").is_empty());
        assert!(valid_project_name("base").is_err());
        assert!(valid_project_name("p+q").is_err());
        assert!(valid_project_name("peak-shave_2").is_ok());
    }
}
