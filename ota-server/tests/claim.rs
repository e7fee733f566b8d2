//! One server per database unless every one runs with leases: a second server without leases
//! on a database another serves refuses to start (its caches would miss the first one's
//! writes), naming `--database`; once the first stops, a server starts on it again. Replicas
//! with leases run together, never beside a server without.

mod common;

use common::{Srv, config, tmp};

fn refused(second: Result<ota_server::Running, String>) -> String {
    match second {
        Ok(r) => {
            r.stop();
            panic!("a second server started on a database another serves");
        }
        Err(e) => {
            assert!(e.starts_with("--database: "), "{e}");
            e
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_database_refuses_to_start() {
    let dir = tmp("claim-sqlite");
    let first = Srv::start(config(&dir)).await;
    let e = refused(ota_server::serve(config(&dir)).await);
    assert!(e.contains("another ota-server"), "{e}");
    first.stop();
    Srv::start(config(&dir)).await.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_servers_without_leases_claim_it_alone_and_replicas_share_it() {
    let Some(cluster) = common::pg::Cluster::start("claim") else {
        return;
    };
    let dir = tmp("claim-pg");
    let on_pg = |lease_ms: u64| {
        let mut c = config(&dir);
        c.database = cluster.url.clone();
        c.lease_ms = lease_ms;
        c
    };
    let alone = Srv::start(on_pg(0)).await;
    refused(ota_server::serve(on_pg(0)).await);
    let e = refused(ota_server::serve(on_pg(1000)).await);
    assert!(e.contains("without leases"), "{e}");
    alone.stop();
    // Replicas with leases share it (the first waits out the claim just let go).
    let a = Srv::start(on_pg(1000)).await;
    let b = Srv::start(on_pg(1000)).await;
    refused(ota_server::serve(on_pg(0)).await);
    a.stop();
    b.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
