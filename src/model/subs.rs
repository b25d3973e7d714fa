//! A link's default sub-ids: what a click on it records (and its
//! destination's `{sub1}`…`{sub5}` get) when the tracking URL carries none,
//! so a partner can tag a link once (`sub1=newsletter`) instead of every
//! URL it shares. A sub-id the click carries always wins.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// Longest default sub-id, as long as a click's own may be.
pub const MAX_DEFAULT_SUB_LEN: usize = 255;

/// `sub1`…`sub5` defaults; absent or empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultSubs {
    /// Default `sub1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub1: Option<String>,
    /// Default `sub2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub2: Option<String>,
    /// Default `sub3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub3: Option<String>,
    /// Default `sub4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub4: Option<String>,
    /// Default `sub5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub5: Option<String>,
}

impl DefaultSubs {
    /// The five values, `""` where none.
    pub fn values(&self) -> [&str; 5] {
        [&self.sub1, &self.sub2, &self.sub3, &self.sub4, &self.sub5]
            .map(|s| s.as_deref().unwrap_or(""))
    }

    /// Whether no default is set.
    pub fn is_empty(&self) -> bool {
        self.values().iter().all(|s| s.is_empty())
    }

    /// Checks each value: at most [`MAX_DEFAULT_SUB_LEN`] bytes, no control
    /// characters; the error names `default_subs.subN`.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (i, v) in self.values().iter().enumerate() {
            let field = format!("default_subs.sub{}", i + 1);
            if v.len() > MAX_DEFAULT_SUB_LEN {
                return Err(FieldError::new(
                    &field,
                    format!("must be at most {MAX_DEFAULT_SUB_LEN} bytes"),
                ));
            }
            if v.chars().any(char::is_control) {
                return Err(FieldError::new(&field, "must not hold control characters"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_checks() {
        let d: DefaultSubs = serde_json::from_str(r#"{"sub1":"news","sub4":""}"#).unwrap();
        assert_eq!(d.values(), ["news", "", "", "", ""]);
        assert!(!d.is_empty());
        assert!(DefaultSubs::default().is_empty());
        assert!(d.validate().is_ok());
        let long = DefaultSubs {
            sub3: Some("x".repeat(256)),
            ..DefaultSubs::default()
        };
        assert_eq!(long.validate().unwrap_err().field, "default_subs.sub3");
        let ctl = DefaultSubs {
            sub5: Some("a\nb".into()),
            ..DefaultSubs::default()
        };
        assert_eq!(ctl.validate().unwrap_err().field, "default_subs.sub5");
        assert!(serde_json::from_str::<DefaultSubs>(r#"{"sub6":"x"}"#).is_err());
    }
}
