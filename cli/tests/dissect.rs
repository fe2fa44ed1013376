//! `amicn dissect` and `amicn name` run as a user would run them.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

const AMICN: &str = env!("CARGO_BIN_EXE_amicn");
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tlv/tests/vectors");

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(AMICN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(b) = stdin {
        input.write_all(b).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn dissects_captured_ndnts_registration() {
    let out = run(
        &["dissect", &format!("{VECTORS}/ndnts.to-forwarder.hex")],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    // Two LpPackets back to back, each with a PitToken and an Interest inside the Fragment.
    assert_eq!(s.matches("100 (LpPacket) (size: ").count(), 2, "{s}");
    assert!(s.contains("├─98 (PitToken) (size: 6) e047ffffffff"), "{s}");
    assert!(s.contains("  └─5 (Interest) (size: 171)"), "{s}");
    assert!(
        s.contains("(Name) (size: 98) /localhost/nfd/rib/register/"),
        "{s}"
    );
    assert!(s.contains("104 (ControlParameters) (size: 29)"), "{s}");
    assert!(s.contains("(Origin) (size: 1) 65"), "{s}");
    assert!(s.contains("(ExpirationPeriod) (size: 4) 1200000"), "{s}");
    assert!(
        s.contains("(ParametersSha256DigestComponent) (size: 32) params-sha256="),
        "{s}"
    );
    assert!(s.contains("(InterestLifetime) (size: 2) 3999"), "{s}");
}

#[test]
fn dissects_from_stdin_and_hex_with_json() {
    let hex =
        std::fs::read_to_string(format!("{VECTORS}/nfdc-route-add.from-forwarder.hex")).unwrap();
    let out = run(&["dissect", "--json", "-"], Some(hex.as_bytes()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["type"], 6);
    assert_eq!(v[0]["name"], "Data");
    let content = &v[0]["children"][2];
    assert_eq!(content["name"], "Content");
    assert_eq!(content["children"][0]["name"], "FaceStatus");
    assert_eq!(
        content["children"][0]["children"][1]["value"],
        "internal://"
    );
    let resp = &v[1]["children"][2]["children"][0];
    assert_eq!(resp["name"], "ControlResponse");
    assert_eq!(resp["children"][0]["value"], "200");

    // Binary input on stdin works the same.
    let bin = hex::decode(hex.split_whitespace().collect::<String>()).unwrap();
    let out2 = run(&["dissect", "--json"], Some(&bin));
    assert_eq!(out2.stdout, out.stdout);

    let out = run(&["dissect", "--hex", "0503 0701 08"], None);
    assert!(!out.status.success());
}

#[test]
fn bad_input_reports_the_offset() {
    // A valid Interest, then a Data whose Name claims more bytes than it holds.
    let out = run(
        &["dissect", "--hex", "050707050803616263 0606 0705 08016100"],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("byte offset 9"), "{err}");
    assert!(err.contains("offset 11"), "{err}");
    // The good packet before it is still printed.
    assert!(text(&out.stdout).contains("5 (Interest) (size: 7)"));

    let out = run(&["dissect", "--hex", "05 fd 00 03"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("non-minimal"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["dissect", "--hex", "zz"], None);
    assert!(!out.status.success());
}

#[test]
fn name_both_ways() {
    let out = run(&["name", "ndn:/localhost/nfd/seg=3/..."], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "/localhost/nfd/seg=3/...\n071508096c6f63616c686f737408036e666432010308 00\n"
            .replace(' ', "")
    );

    let out = run(
        &[
            "name",
            "--hex",
            "071508096c6f63616c686f737408036e6664320103 0800",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("/localhost/nfd/seg=3/...\n"));

    for bad in [
        &["name", "/a/.."][..],
        &["name", "--hex", "0703080561"],
        &["name", "/sha256digest=12"],
    ] {
        let out = run(bad, None);
        assert!(!out.status.success(), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn dissects_a_meter_reading_plaintext() {
    // The worked example of `amicn_ami::reading`: meter 17, a quarter hour, seven registers.
    let hex = "a197 a50101 a70111 a90800060efa8b2f2700 ab04000dbba0 ad0100 \
               af11 b106 0100010800ff b30312d687 b502001e \
               af0f b106 0100020800ff b30100 b502001e \
               af11 b106 0100030800ff b3030181cd b5020020 \
               af0f b106 0100040800ff b30100 b5020020 \
               af10 b106 0100010700ff b3020730 b502001b \
               af10 b106 0100200700ff b30208f9 b502ff23 \
               af10 b106 01001f0700ff b302033a b502fe21";
    let out = run(&["dissect", "--hex", hex], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.starts_with(
            "161 (Reading) (size: 151) meter 17, 2024-01-15T11:45:00Z + 15 min, flags 0x00 (none)\n"
        ),
        "{s}"
    );
    assert!(
        s.contains("├─175 (Register) (size: 17) 1-0:1.8.0 active import energy = 1234567 Wh\n"),
        "{s}"
    );
    assert!(
        s.contains("└─175 (Register) (size: 16) 1-0:31.7.0 current L1 = 8.26 A\n"),
        "{s}"
    );
    assert!(
        s.contains("  └─181 (ScalerUnit) (size: 2) scaler -2, unit 33 (A)\n"),
        "{s}"
    );

    let out = run(&["dissect", "--json", "--reading", "--hex", hex], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "Reading");
    assert_eq!(
        v[0]["children"][11]["value"],
        "1-0:31.7.0 current L1 = 8.26 A"
    );

    // --reading refuses what is not one; a damaged reading is reported, not half shown.
    let out = run(
        &["dissect", "--reading", "--hex", "050707050803616263"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid reading"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["dissect", "--hex", "a105 a50102 a700"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("format version 2"),
        "{}",
        text(&out.stderr)
    );
}
