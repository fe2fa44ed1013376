//! `amicn dissect`: print the TLV tree of NDN packets with element names and decoded values,
//! like ndn-cxx's `ndn-dissect`, or as JSON for scripts.
//!
//! AMI meter readings (the decrypted plaintext of a reading, [`amicn_ami::reading`]) are shown
//! the same way, each register decoded (`1-0:1.8.0 active import energy = 1234567 Wh`): an
//! element is taken for a reading when its TLV-TYPE is Reading or ReadingBlock and its first
//! child is FormatVersion, or always with `--reading`. A reading is decoded strictly first, so
//! a damaged one is reported rather than half shown.

use std::io::Read;
use std::path::PathBuf;

use amicn_ami::reading;
use amicn_tlv::TlvReader;
use amicn_tlv::walk::{Node, walk_at};
use anyhow::{Context, bail};
use bytes::Bytes;

/// Arguments of `amicn dissect`.
#[derive(Debug, clap::Args)]
pub(crate) struct DissectArgs {
    /// File holding back-to-back packets, binary or hex text; `-` or nothing reads stdin
    file: Option<PathBuf>,
    /// Take the packets from this hex string instead
    #[arg(long, conflicts_with = "file")]
    hex: Option<String>,
    /// Print one JSON array of element trees
    #[arg(long)]
    json: bool,
    /// Decode every element as an AMI meter reading or reading block (reading plaintexts are
    /// recognised without it when they start with Reading/ReadingBlock and FormatVersion)
    #[arg(long)]
    reading: bool,
}

/// Runs `amicn dissect`.
pub(crate) fn run(args: DissectArgs) -> anyhow::Result<()> {
    let input = match (&args.hex, &args.file) {
        (Some(h), _) => decode_hex(h).context("--hex is not a hex string")?,
        (None, Some(p)) if p.as_os_str() != "-" => {
            let raw = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            maybe_hex(raw)?
        }
        _ => {
            let mut raw = Vec::new();
            std::io::stdin()
                .read_to_end(&mut raw)
                .context("cannot read stdin")?;
            maybe_hex(raw)?
        }
    };
    if input.is_empty() {
        bail!("no input bytes");
    }
    let (trees, failure) = dissect_all(Bytes::from(input), args.reading);
    if args.json {
        let v: Vec<serde_json::Value> = trees.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&trees));
    }
    match failure {
        Some(f) => bail!(f),
        None => Ok(()),
    }
}

/// The trees of the back-to-back elements of `buf`, and why the walk stopped early if it did
/// (the trees before the failure are kept). `readings`: every element is a reading.
fn dissect_all(buf: Bytes, readings: bool) -> (Vec<Node>, Option<String>) {
    let mut pos = 0;
    let mut trees = Vec::new();
    let mut failure = None;
    while pos < buf.len() {
        let rest = buf.slice(pos..);
        if readings || reading::looks_like_reading(&rest) {
            // A reading is not a network packet: no 8800-byte cap (a block may be larger).
            let len = match TlvReader::with_base(rest.clone(), pos).read() {
                Ok(e) => e.wire.len(),
                Err(e) => {
                    failure = Some(format!("invalid reading at byte offset {pos}: {e}"));
                    break;
                }
            };
            match reading::dissect(rest.slice(..len), pos) {
                Ok(n) => trees.push(n),
                Err(e) => {
                    failure = Some(format!(
                        "invalid reading starting at byte offset {pos}: {e}"
                    ));
                    break;
                }
            }
            pos += len;
            continue;
        }
        let len = match amicn_tlv::split_first_tlv(&rest) {
            Ok(Some(n)) => n,
            Ok(None) => {
                failure = Some(format!(
                    "truncated packet at byte offset {pos}: {} bytes left, the TLV header announces more",
                    rest.len()
                ));
                break;
            }
            Err(e) => {
                failure = Some(format!("invalid packet at byte offset {pos}: {e}"));
                break;
            }
        };
        match walk_at(rest.slice(..len), pos) {
            Ok(nodes) => trees.extend(nodes),
            Err(e) => {
                failure = Some(format!("invalid packet starting at byte offset {pos}: {e}"));
                break;
            }
        }
        pos += len;
    }
    (trees, failure)
}

/// The text form of `trees`, one indented tree each.
fn render(trees: &[Node]) -> String {
    let mut out = String::new();
    for t in trees {
        print_tree(&mut out, t, "", None);
    }
    out
}

fn decode_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(hex::decode(clean)?)
}

/// Hex text (as in the captured vectors) is accepted as well as raw packets.
fn maybe_hex(raw: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let looks_hex = !raw.is_empty()
        && raw
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace());
    if looks_hex {
        decode_hex(std::str::from_utf8(&raw)?)
            .context("input looks like hex text but does not decode")
    } else {
        Ok(raw)
    }
}

fn print_tree(out: &mut String, n: &Node, indent: &str, last: Option<bool>) {
    use std::fmt::Write;
    let (branch, child_indent) = match last {
        None => ("", String::new()),
        Some(true) => ("└─", format!("{indent}  ")),
        Some(false) => ("├─", format!("{indent}│ ")),
    };
    let label = n.label.unwrap_or("Unknown");
    let _ = write!(
        out,
        "{indent}{branch}{} ({label}) (size: {})",
        n.typ,
        n.value.len()
    );
    if let Some(d) = &n.decoded {
        let _ = write!(out, " {d}");
    }
    out.push('\n');
    let count = n.children.len();
    for (k, c) in n.children.iter().enumerate() {
        print_tree(out, c, &child_indent, Some(k + 1 == count));
    }
}

fn to_json(n: &Node) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), n.typ.into());
    m.insert(
        "name".into(),
        n.label.map_or(serde_json::Value::Null, Into::into),
    );
    m.insert("offset".into(), n.offset.into());
    m.insert("length".into(), n.value.len().into());
    if n.children.is_empty() {
        m.insert("hex".into(), hex::encode(&n.value).into());
    }
    if let Some(d) = &n.decoded {
        m.insert("value".into(), d.clone().into());
    }
    if !n.children.is_empty() {
        m.insert(
            "children".into(),
            n.children.iter().map(to_json).collect::<Vec<_>>().into(),
        );
    }
    m.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use amicn_ami::reading::{Flags, Obis, Reading, ReadingBlock, Register, Unit};

    fn quarter_hour(start_us: u64) -> Reading {
        let mut r = Reading::new(17, start_us, 900_000)
            .with(Register::new(
                Obis::ACTIVE_IMPORT_ENERGY,
                1_234_567,
                0,
                Unit::WH,
            ))
            .with(Register::new(Obis::ACTIVE_POWER, 1_840, 0, Unit::W))
            .with(Register::new(Obis::VOLTAGE_L1, 2_297, -1, Unit::V));
        r.flags = Flags::ESTIMATED;
        r
    }

    #[test]
    fn dissect_recognises_a_reading_plaintext() {
        let w = quarter_hour(1_705_319_100_000_000).encode().unwrap();
        let (trees, failure) = dissect_all(w.clone(), false);
        assert_eq!(failure, None);
        let text = render(&trees);
        let expected = "\
161 (Reading) (size: 80) meter 17, 2024-01-15T11:45:00Z + 15 min, flags 0x01 (estimated)
├─165 (FormatVersion) (size: 1) 1
├─167 (MeterId) (size: 1) 17
├─169 (IntervalStart) (size: 8) 1705319100000000 µs = 2024-01-15T11:45:00Z
├─171 (IntervalLength) (size: 4) 900000 ms = 15 min
├─173 (QualityFlags) (size: 1) 0x01 (estimated)
├─175 (Register) (size: 17) 1-0:1.8.0 active import energy = 1234567 Wh
│ ├─177 (Obis) (size: 6) 1-0:1.8.0*255 (active import energy)
│ ├─179 (Value) (size: 3) 1234567
│ └─181 (ScalerUnit) (size: 2) scaler 0, unit 30 (Wh)
├─175 (Register) (size: 16) 1-0:1.7.0 active power = 1840 W
│ ├─177 (Obis) (size: 6) 1-0:1.7.0*255 (active power)
│ ├─179 (Value) (size: 2) 1840
│ └─181 (ScalerUnit) (size: 2) scaler 0, unit 27 (W)
└─175 (Register) (size: 16) 1-0:32.7.0 voltage L1 = 229.7 V
  ├─177 (Obis) (size: 6) 1-0:32.7.0*255 (voltage L1)
  ├─179 (Value) (size: 2) 2297
  └─181 (ScalerUnit) (size: 2) scaler -1, unit 35 (V)
";
        assert_eq!(text, expected);
        // The flag gives the same tree; JSON carries the decoded values.
        assert_eq!(dissect_all(w, true).0, trees);
        let j = to_json(&trees[0]);
        assert_eq!(j["name"], "Reading");
        assert_eq!(j["children"][5]["children"][1]["value"], "1234567");
    }

    #[test]
    fn dissect_shows_a_block_beside_a_packet() {
        let block = ReadingBlock {
            meter: 17,
            readings: vec![
                quarter_hour(1_705_319_100_000_000),
                quarter_hour(1_705_320_000_000_000),
            ],
        };
        let mut input = block.encode().unwrap().to_vec();
        let interest_at = input.len();
        // An Interest for /abc after it.
        input.extend_from_slice(&[0x05, 0x07, 0x07, 0x05, 0x08, 0x03, b'a', b'b', b'c']);
        let (trees, failure) = dissect_all(Bytes::from(input), false);
        assert_eq!(failure, None);
        assert_eq!(trees.len(), 2);
        assert_eq!(trees[0].label, Some("ReadingBlock"));
        assert_eq!(trees[0].decoded.as_deref(), Some("meter 17, 2 readings"));
        let text = render(&trees);
        assert_eq!(
            text.matches("(Reading) (size: 80) meter 17, 2024-01-15T")
                .count(),
            2,
            "{text}"
        );
        assert_eq!(
            (trees[1].label, trees[1].offset),
            (Some("Interest"), interest_at)
        );
    }

    #[test]
    fn dissect_reports_a_damaged_reading_and_a_packet_under_the_flag() {
        let mut w = quarter_hour(1_705_319_100_000_000)
            .encode()
            .unwrap()
            .to_vec();
        // The first Obis (offset 29) loses an octet from its length.
        assert_eq!(w[29..31], [0xB1, 6]);
        w[30] = 5;
        let (trees, failure) = dissect_all(Bytes::from(w), false);
        assert!(trees.is_empty());
        let f = failure.unwrap();
        assert!(
            f.starts_with("invalid reading starting at byte offset 0: "),
            "{f}"
        );

        let interest = Bytes::from_static(&[0x05, 0x07, 0x07, 0x05, 0x08, 0x03, b'a', b'b', b'c']);
        let (trees, failure) = dissect_all(interest.clone(), true);
        assert!(trees.is_empty());
        assert!(
            failure
                .unwrap()
                .contains("expected a Reading but found TLV-TYPE 5")
        );
        let (trees, failure) = dissect_all(interest, false);
        assert_eq!((trees.len(), failure), (1, None));
    }
}
