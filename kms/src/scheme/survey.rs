//! The survey's cost formulas (Tables III, IV and V), evaluated for given parameters and unit
//! costs.
//!
//! Readings where the printed tables are ambiguous:
//! - `h` (no index) is the height of one binary tree over all `n` meters, `log2 n`; `h_j` and
//!   `h_k` are `log2 m_j` (every project has `m_j` members, so the new home project too).
//! - KMSSC's `P = (4n + 5) + C_f` adds a count to a time; it is read as `(4n + 5)·C_f`, the only
//!   reading with a unit.
//! - `Σ_{j=1}^{N_pr} (m_j − 1)` with equal projects is `N_pr·(m_j − 1)`; SKM's meter storage
//!   `Σ_{j=1}^{N_sub} (log2 m_j + 1) + 1` is `N_sub·(log2 m_j + 1) + 1`.

use super::units::UnitCosts;

/// The Table I parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SurveyParams {
    /// n: meters.
    pub n: f64,
    /// N_pr: DR projects.
    pub n_pr: f64,
    /// m_j: members of each DR project.
    pub m_j: f64,
    /// N_sub(u_i): projects of the measured meter (X).
    pub n_sub: f64,
    /// |K|: key size in bits.
    pub key_bits: f64,
    /// |A|: members of the measured meter's subgroup.
    pub subgroup: f64,
}

impl SurveyParams {
    fn h(&self) -> f64 {
        self.n.max(1.0).log2()
    }
    fn hj(&self) -> f64 {
        self.m_j.max(1.0).log2()
    }
    fn c(&self) -> f64 {
        self.n_pr.max(1.0).log2()
    }
    fn x(&self) -> f64 {
        self.n_sub
    }
    fn y(&self) -> f64 {
        self.n_pr - self.n_sub
    }
}

/// The schemes of Tables III–V.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SurveyScheme {
    /// SAMI \[49\].
    Sami,
    /// KMSSC \[48\].
    Kmssc,
    /// SKM \[32\].
    Skm,
    /// eSKAMI \[50\].
    Eskami,
    /// MK-AMI \[20\].
    MkAmi,
}

impl SurveyScheme {
    /// Every row, in the tables' order.
    pub const ALL: [SurveyScheme; 5] = [
        SurveyScheme::Sami,
        SurveyScheme::Kmssc,
        SurveyScheme::Skm,
        SurveyScheme::Eskami,
        SurveyScheme::MkAmi,
    ];

    /// Name as printed in the survey.
    pub fn name(self) -> &'static str {
        match self {
            SurveyScheme::Sami => "SAMI",
            SurveyScheme::Kmssc => "KMSSC",
            SurveyScheme::Skm => "SKM",
            SurveyScheme::Eskami => "eSKAMI",
            SurveyScheme::MkAmi => "MK-AMI",
        }
    }
}

/// One formula: its text and its value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Formula {
    /// As printed (after the readings above).
    pub expr: &'static str,
    /// Value: nanoseconds (Table III), bits (Table IV) or keys (Table V).
    pub value: f64,
}

fn f(expr: &'static str, value: f64) -> Formula {
    Formula { expr, value }
}

/// Table III: computation, nanoseconds; `None` where the survey has no entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Computation {
    /// End-to-end key establishment, MDMS and meter.
    pub e2e: Option<(Formula, Formula)>,
    /// Initialising a group.
    pub init: (Formula, Formula),
    /// Adding a member.
    pub add: (Formula, Formula),
    /// Deleting a member.
    pub delete: (Formula, Formula),
}

/// Table IV: communication, bits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Communication {
    /// Member addition: unicast, broadcast.
    pub add: (Formula, Formula),
    /// Member deletion: unicast, broadcast.
    pub delete: (Formula, Formula),
}

/// Table V: storage, keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Storage {
    /// At the MDMS.
    pub mdms: Formula,
    /// At meter u_i.
    pub meter: Formula,
}

/// Table III for `s`.
pub fn computation(s: SurveyScheme, p: &SurveyParams, u: &UnitCosts) -> Computation {
    let (n, h) = (p.n, p.h());
    let (a, b) = (u.a(), u.b());
    let (ce, cf, cr) = (u.encrypt, u.one_way, u.keygen);
    let e2e = Some((f("n·A", n * a), f("A", a)));
    let tree = |init: Formula| Computation {
        e2e: e2e.clone(),
        init: (init, f("h·C_ε", h * ce)),
        add: (f("h·B + C_r", h * b + cr), f("h·B", h * b)),
        delete: (f("h·B + C_r", h * b + cr), f("h·B", h * b)),
    };
    match s {
        SurveyScheme::Sami => tree(f("n·A + n·C_r", n * a + n * cr)),
        SurveyScheme::Eskami => tree(f("n·B + n·C_r", n * b + n * cr)),
        SurveyScheme::MkAmi => {
            let mut c = tree(f("n·B + n·C_r", n * b + n * cr));
            c.e2e = Some((f("n·A", n * a), f("C_P + C_M", u.pairing + u.mult)));
            c
        }
        SurveyScheme::Skm => Computation {
            e2e,
            init: (f("2n·B + n·C_r", 2.0 * n * b + n * cr), f("h·C_ε", h * ce)),
            add: (
                f("h·(C_ε + 2C_f) + C_r", h * (ce + 2.0 * cf) + cr),
                f("h·B", h * b),
            ),
            delete: (
                f("h·(C_ε + 2C_f) + C_r", h * (ce + 2.0 * cf) + cr),
                f("h·B", h * b),
            ),
        },
        SurveyScheme::Kmssc => {
            let pp = (4.0 * n + 5.0) * cf;
            let q = 4.0 * n * cf;
            Computation {
                e2e: None,
                init: (f("n·C_ε", n * ce), f("C_ε", ce)),
                add: (
                    f("P + (n+2)·C_ε", pp + (n + 2.0) * ce),
                    f("Q + C_ε", q + ce),
                ),
                delete: (
                    f("P + (n+2)·C_ε", pp + (n + 2.0) * ce),
                    f("Q + C_ε", q + ce),
                ),
            }
        }
    }
}

/// Table IV for `s`.
pub fn communication(s: SurveyScheme, p: &SurveyParams) -> Communication {
    let k = p.key_bits;
    let (h, hj, c, x, y) = (p.h(), p.hj(), p.c(), p.x(), p.y());
    let hk = hj;
    match s {
        SurveyScheme::Sami | SurveyScheme::MkAmi => Communication {
            add: (f("h_j·|K| + c", hj * k + c), f("|K| + c", k + c)),
            delete: (
                f("(h_j + N_pr − 1)·|K|", (hj + p.n_pr - 1.0) * k),
                f(
                    "(h_j + 2X + Y + h_k)·|K| + c",
                    (hj + 2.0 * x + y + hk) * k + c,
                ),
            ),
        },
        SurveyScheme::Eskami => Communication {
            add: (f("2h_j·|K| + c", 2.0 * hj * k + c), f("|K| + c", k + c)),
            delete: (
                f("(2h_j + N_pr − 1)·|K|", (2.0 * hj + p.n_pr - 1.0) * k),
                f(
                    "(2h_j + 2X + Y + 2h_k)·|K| + c",
                    (2.0 * hj + 2.0 * x + y + 2.0 * hk) * k + c,
                ),
            ),
        },
        SurveyScheme::Kmssc => Communication {
            add: (f("2n·|K|", 2.0 * p.n * k), f("0", 0.0)),
            delete: (f("2n·|K|", 2.0 * p.n * k), f("0", 0.0)),
        },
        SurveyScheme::Skm => Communication {
            add: (f("h·|K|", h * k), f("h·|K| + h", h * k + h)),
            delete: (f("0", 0.0), f("h·|K| + h", h * k + h)),
        },
    }
}

/// Table V for `s`.
pub fn storage(s: SurveyScheme, p: &SurveyParams) -> Storage {
    let graph = 2.0 * p.n_pr * (p.m_j - 1.0) + 1.0;
    match s {
        SurveyScheme::Sami | SurveyScheme::Eskami | SurveyScheme::MkAmi => Storage {
            mdms: f("2·Σ_j (m_j − 1) + 1", graph),
            meter: f(
                "log2|A| + N_sub(u_i) + 1",
                p.subgroup.max(1.0).log2() + p.n_sub + 1.0,
            ),
        },
        SurveyScheme::Kmssc => Storage {
            mdms: f("n + N_pr + 1", p.n + p.n_pr + 1.0),
            meter: f("N_sub(u_i) + 2", p.n_sub + 2.0),
        },
        SurveyScheme::Skm => Storage {
            mdms: f("2·Σ_j (m_j − 1) + 1", graph),
            meter: f(
                "Σ_{j ≤ N_sub} (log2 m_j + 1) + 1",
                p.n_sub * (p.hj() + 1.0) + 1.0,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units() -> UnitCosts {
        UnitCosts {
            pairing: 1000.0,
            mult: 100.0,
            encrypt: 10.0,
            keygen: 3.0,
            one_way: 2.0,
            x25519_hkdf: 50.0,
            ibe_agree: 1200.0,
        }
    }

    fn params() -> SurveyParams {
        SurveyParams {
            n: 1024.0,
            n_pr: 4.0,
            m_j: 256.0,
            n_sub: 2.0,
            key_bits: 128.0,
            subgroup: 64.0,
        }
    }

    #[test]
    fn hand_evaluated_cells() {
        let (p, u) = (params(), units());
        // SAMI deletion broadcast: (h_j + 2X + Y + h_k)|K| + c = (8 + 4 + 2 + 8)·128 + 2.
        let c = communication(SurveyScheme::Sami, &p);
        assert_eq!(c.delete.1.value, 22.0 * 128.0 + 2.0);
        // eSKAMI addition unicast: 2h_j|K| + c = 16·128 + 2.
        assert_eq!(
            communication(SurveyScheme::Eskami, &p).add.0.value,
            16.0 * 128.0 + 2.0
        );
        // KMSSC: 2n|K| unicast, nothing in broadcast.
        let k = communication(SurveyScheme::Kmssc, &p);
        assert_eq!((k.add.0.value, k.add.1.value), (2.0 * 1024.0 * 128.0, 0.0));
        // SKM deletion: no unicast, h|K| + h broadcast with h = log2 1024 = 10.
        let s = communication(SurveyScheme::Skm, &p);
        assert_eq!((s.delete.0.value, s.delete.1.value), (0.0, 1290.0));
        // Table III, SAMI add at the MDMS: h·B + C_r = 10·12 + 3.
        assert_eq!(computation(SurveyScheme::Sami, &p, &u).add.0.value, 123.0);
        // KMSSC add: (4n + 5)·C_f + (n + 2)·C_ε = 4101·2 + 1026·10.
        assert_eq!(
            computation(SurveyScheme::Kmssc, &p, &u).add.0.value,
            8202.0 + 10260.0
        );
        assert!(computation(SurveyScheme::Kmssc, &p, &u).e2e.is_none());
        // Table V: 2·4·255 + 1 at the MDMS; log2 64 + 2 + 1 at the meter.
        let st = storage(SurveyScheme::Sami, &p);
        assert_eq!((st.mdms.value, st.meter.value), (2041.0, 9.0));
        assert_eq!(storage(SurveyScheme::Kmssc, &p).mdms.value, 1029.0);
        assert_eq!(storage(SurveyScheme::Skm, &p).meter.value, 19.0);
    }
}
