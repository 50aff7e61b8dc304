//! Care teams: several practices that treat a patient together (a GP, a cardiologist, a
//! rehabilitation clinic). A patient's consent can name a team instead of one practice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Validate;
use crate::error::{Result, ensure};
use crate::ids::{CareTeamId, ProviderId, UserId};

pub const MAX_TEAM_MEMBERS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareTeam {
    pub id: CareTeamId,
    pub name: String,
    /// The practices in the team.
    pub members: Vec<ProviderId>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

impl CareTeam {
    pub fn includes(&self, provider: &ProviderId) -> bool {
        self.members.contains(provider)
    }
}

impl Validate for CareTeam {
    fn validate(&self) -> Result<()> {
        let n = self.name.trim().chars().count();
        ensure((1..=100).contains(&n), "care_team.name", || "1 to 100 characters".into())?;
        ensure((1..=MAX_TEAM_MEMBERS).contains(&self.members.len()), "care_team.members", || {
            format!("1 to {MAX_TEAM_MEMBERS} practices")
        })?;
        let mut m = self.members.clone();
        m.sort();
        m.dedup();
        ensure(m.len() == self.members.len(), "care_team.members", || "each practice once".into())
    }
}
