//! `amicn dissect`: print the TLV tree of NDN packets with element names and decoded values,
//! like ndn-cxx's `ndn-dissect`, or as JSON for scripts.

use std::io::Read;
use std::path::PathBuf;

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
    let buf = Bytes::from(input);
    let mut pos = 0;
    let mut trees = Vec::new();
    let mut failure = None;
    while pos < buf.len() {
        let rest = buf.slice(pos..);
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
    if args.json {
        let v: Vec<serde_json::Value> = trees.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let mut out = String::new();
        for t in &trees {
            print_tree(&mut out, t, "", None);
        }
        print!("{out}");
    }
    match failure {
        Some(f) => bail!(f),
        None => Ok(()),
    }
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
