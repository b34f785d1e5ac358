//! Development servers: what `tributary dev …` starts, and what
//! `standalone` starts in place of services the user did not point it at —
//! an in-memory Kafka ([`DevBroker`]) and the offline random-user API
//! ([`random_user_api`]). No task kind uses them; production code reaches
//! them only through this module, by name.

mod broker;
pub mod random_user_api;

pub use broker::DevBroker;
