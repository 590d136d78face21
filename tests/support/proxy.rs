//! A credential proxy (`reconciler::credentials::Proxy`) serving a temp data dir on its own
//! runtime, in front of the fake Anthropic API that accepts only the real key.

use std::path::PathBuf;

use reconciler::credentials::{
    Credential, Kind, Placeholders, Proxy, ProxySettings, Secret, Store, Upstream,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fake_anthropic::{FakeAnthropic, Script};

/// The credential the proxy injects; no container or client ever sees it.
pub const REAL_KEY: &str = "sk-ant-api03-the-real-key-never-leaves-the-host";

/// A proxy serving a temp data dir, in front of a fake; stopped on drop.
pub struct Harness {
    pub fake: FakeAnthropic,
    pub placeholders: Placeholders,
    pub socket: PathBuf,
    pub data: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Harness {
    /// The fake accepts only the real key; the store holds it unless `store` is false.
    pub fn start(script: Script, store: bool, adjust: impl FnOnce(&mut ProxySettings)) -> Harness {
        let fake = FakeAnthropic::start(script.require_key(REAL_KEY));
        let data = tempfile::tempdir().expect("proxy harness");
        if store {
            Store::new(data.path())
                .save(&Credential {
                    kind: Kind::ApiKey,
                    secret: Secret::new(REAL_KEY),
                })
                .expect("proxy harness");
        }
        let mut settings = ProxySettings::new(
            data.path(),
            Upstream::parse(&fake.url()).expect("proxy harness"),
            None,
        );
        adjust(&mut settings);
        let socket = settings.socket.clone();
        let placeholders = Placeholders::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy harness");
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let proxy = {
            let _guard = runtime.enter();
            Proxy::bind(settings, placeholders.clone()).expect("proxy harness")
        };
        {
            let _guard = runtime.enter();
            tasks.spawn(proxy.run(stop.clone()));
        }
        Harness {
            fake,
            placeholders,
            socket,
            data,
            runtime,
            stop,
            tasks,
        }
    }

    /// Stores `secret` as the host's credential of `kind` (the proxy reads it per request).
    pub fn store(&self, kind: Kind, secret: &str) {
        Store::new(self.data.path())
            .save(&Credential {
                kind,
                secret: Secret::new(secret),
            })
            .expect("proxy harness");
    }

    pub fn key(&self, container: &str) -> String {
        self.placeholders
            .register(container)
            .expect("proxy harness")
            .key
            .expose()
            .to_string()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
        self.tasks.close();
        self.runtime.block_on(self.tasks.wait());
    }
}
