//! Whether python-ndn is importable, for the interop tests (CI sets AMICN_REQUIRE_INTEROP=1 so
//! a missing python-ndn fails there instead of skipping).
#![allow(unreachable_pub)]

pub fn have_python_ndn(skipping: &str) -> bool {
    let have = std::process::Command::new("python3")
        .args(["-c", "import ndn, Cryptodome"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var("AMICN_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "python-ndn is required (AMICN_REQUIRE_INTEROP=1) but not importable"
        );
        eprintln!("python-ndn not installed; skipping {skipping}");
    }
    have
}
