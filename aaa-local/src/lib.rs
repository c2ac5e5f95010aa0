//! Local accounts (work in progress).
