//! Checkers for the histories in [`super::history`].
