//! Prediction runs started over HTTP: one at a time, on a blocking thread, with their status
//! kept in memory (the stored prediction sets and the audit log are the durable record).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use carelens_domain::{HealthId, UserId};
use chrono::{DateTime, Utc};

use crate::error::{ApiError, ErrorCode};

/// What a run covers.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// `None`: every patient.
    pub patients: Option<Vec<HealthId>>,
    pub heatmaps: bool,
}

/// Runs a prediction batch; the binary implements it (it picks the burn backend).
pub trait PredictionRunner: Send + Sync + 'static {
    /// Runs to the end on the calling thread (a blocking one); calls `progress(n)` after `n`
    /// more patients. Returns the batch report as JSON, or what went wrong.
    fn run(&self, request: &RunRequest, progress: &(dyn Fn(u64) + Sync)) -> Result<serde_json::Value, String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub state: JobState,
    pub requested_by: UserId,
    pub patients: Option<usize>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub patients_done: u64,
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
}

struct Entry {
    job: Job,
    progress: Arc<AtomicU64>,
}

/// The run table; keeps the last [`Jobs::KEEP`] runs.
pub struct Jobs {
    runner: Option<Arc<dyn PredictionRunner>>,
    table: Arc<Mutex<Vec<Entry>>>,
}

impl Jobs {
    pub const KEEP: usize = 100;

    pub fn new(runner: Option<Arc<dyn PredictionRunner>>) -> Self {
        Self { runner, table: Arc::default() }
    }

    fn lock(table: &Mutex<Vec<Entry>>) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn snapshot(e: &Entry) -> Job {
        let mut job = e.job.clone();
        job.patients_done = e.progress.load(Ordering::Relaxed);
        job
    }

    /// Starts a run unless one is running.
    pub fn start(&self, request: RunRequest, by: UserId) -> Result<Job, ApiError> {
        let Some(runner) = self.runner.clone() else {
            return Err(ApiError::new(
                ErrorCode::NoModels,
                "this server was started without prediction models: start it with `carelens serve --models <registry>`",
            ));
        };
        let mut table = Self::lock(&self.table);
        if let Some(running) = table.iter().find(|e| e.job.state == JobState::Running) {
            return Err(ApiError::new(
                ErrorCode::JobRunning,
                format!(
                    "prediction run {} is in progress; poll GET /api/v1/prediction-runs/{}",
                    running.job.id, running.job.id
                ),
            ));
        }
        let id = table.last().map_or(1, |e| e.job.id + 1);
        let job = Job {
            id,
            state: JobState::Running,
            requested_by: by,
            patients: request.patients.as_ref().map(Vec::len),
            started_at: Utc::now(),
            finished_at: None,
            patients_done: 0,
            report: None,
            error: None,
        };
        let progress = Arc::new(AtomicU64::new(0));
        table.push(Entry { job: job.clone(), progress: progress.clone() });
        if table.len() > Self::KEEP {
            table.remove(0);
        }
        drop(table);
        let table = self.table.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = runner.run(&request, &|n| {
                progress.fetch_add(n, Ordering::Relaxed);
            });
            let mut table = Self::lock(&table);
            if let Some(e) = table.iter_mut().find(|e| e.job.id == id) {
                e.job.finished_at = Some(Utc::now());
                match outcome {
                    Ok(report) => {
                        e.job.state = JobState::Succeeded;
                        e.job.report = Some(report);
                    }
                    Err(error) => {
                        tracing::warn!(job = id, "prediction run failed");
                        e.job.state = JobState::Failed;
                        e.job.error = Some(error);
                    }
                }
            }
        });
        Ok(job)
    }

    pub fn get(&self, id: u64) -> Option<Job> {
        Self::lock(&self.table).iter().find(|e| e.job.id == id).map(Self::snapshot)
    }

    pub fn list(&self) -> Vec<Job> {
        Self::lock(&self.table).iter().rev().map(Self::snapshot).collect()
    }
}
