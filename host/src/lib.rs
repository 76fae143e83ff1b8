//! nfvhost library
