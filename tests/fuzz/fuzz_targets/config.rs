//! Broker and topic configuration parsing.
//!
//! The first byte chooses what the rest is:
//! - 0: a `chronik.toml` file, loaded with `Config::load` (TOML, unknown keys, types, validation);
//! - 1: `NAME=value` lines, given to `Config::load` as `CHRONIK_NAME` environment variables;
//! - 2: `key=value` lines (a line without `=` is a key without a value, as in a DeleteConfig),
//!   checked as topic configs (`TopicConfigs::from_pairs`, `resolve`, `describe`).
//!
//! What must hold: no panic; a configuration that loads is written back as TOML and loads again
//! to the same value; its derived settings (advertised address, cache, tiering URL, CPU lists)
//! can be computed; topic configs that validate resolve against the broker defaults.
#![no_main]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use chronik::Config;
use chronik::config::Overrides;
use chronik::config::topic::TopicConfigs;
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static D: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &D.get_or_init(|| {
        let d = chronik_fuzz::scratch_dir("chronik-fuzz-config-");
        let p = d.path().join("chronik.toml");
        (d, p)
    })
    .1
}

fn derived(config: &Config) {
    let bound: SocketAddr = "127.0.0.1:9092".parse().expect("address");
    let _ = config.advertised(bound);
    let _ = config.cache.cache_config(&config.data_dir);
    let _ = config.tiering.effective_url(&config.data_dir);
    let _ = config.search.effective_index_threads();
    let _ = config.search.home_cpus();
    let _ = config.search.all_index_cpus();
    let _ = TopicConfigs::default().resolve(&config.log);
}

fn load_file(text: &str) -> Option<Config> {
    let path = scratch();
    std::fs::write(path, text).expect("write the config file");
    Config::load(Some(path), std::iter::empty(), &Overrides::default()).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Some(config) = load_file(text) {
                derived(&config);
                let written = toml_text(&config);
                let again = load_file(&written).expect("a loaded config, written back, loads");
                assert_eq!(again, config, "a config round-trips through TOML");
            }
        }
        1 => {
            let env = text.lines().filter_map(|l| {
                let (k, v) = l.split_once('=')?;
                Some((format!("CHRONIK_{k}"), v.to_string()))
            });
            if let Ok(config) = Config::load(None, env, &Overrides::default()) {
                derived(&config);
            }
        }
        _ => {
            let pairs: Vec<(&str, Option<&str>)> = text
                .lines()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (l, None),
                })
                .collect();
            if let Ok(configs) = TopicConfigs::from_pairs(pairs) {
                let defaults = Config::default().log;
                let _ = configs.resolve(&defaults);
                let _ = configs.min_insync_replicas(&defaults);
                let _ = configs.describe(&defaults);
            }
        }
    }
});

fn toml_text(config: &Config) -> String {
    chronik_fuzz::to_toml(config)
}
