//! `amicn name`: convert between an NDN name's URI and its Name TLV.

use amicn_tlv::Name;
use anyhow::Context;
use bytes::Bytes;

/// Arguments of `amicn name`.
#[derive(Debug, clap::Args)]
pub(crate) struct NameArgs {
    /// Name URI, e.g. /ami/meter-1/seg=3
    #[arg(required_unless_present = "hex", conflicts_with = "hex")]
    uri: Option<String>,
    /// Decode this Name TLV (hex) instead
    #[arg(long)]
    hex: Option<String>,
}

/// Runs `amicn name`: prints the canonical URI, then the Name TLV in hex.
pub(crate) fn run(args: NameArgs) -> anyhow::Result<()> {
    let name = match (&args.uri, &args.hex) {
        (_, Some(h)) => {
            let clean: String = h.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = hex::decode(clean).context("--hex is not a hex string")?;
            Name::decode(Bytes::from(bytes)).context("not a valid Name TLV")?
        }
        (Some(u), None) => {
            Name::from_uri(u).with_context(|| format!("{u:?} is not a valid NDN name URI"))?
        }
        (None, None) => anyhow::bail!("give a name URI or --hex"),
    };
    println!("{name}");
    println!("{}", hex::encode(name.to_wire()));
    Ok(())
}
