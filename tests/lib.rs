//! End-to-end test support lives in `e2e/`; this library is intentionally empty.
