//! The TUF route: a publisher adds a signed package to a TUF repository, and a device's client
//! refreshes its trusted metadata, resolves the target to a verified package and downloads it.
//! README.md's TUF Rust snippet is the part between the `README` markers;
//! `cargo run -p ota-host --example tuf` runs it in a temporary directory, the repository's
//! own directories standing for the HTTP base URLs a device would be given.

use ota_core::{Limits, Package, UnixMs, seal, sign};
use ota_host::tuf::repo::{Role, Roles};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ota-example-tuf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // The inputs: a sealed firmware package, signed and verified as on the DSSE route; one
    // key for every role; the time.
    let now = UnixMs(1_776_238_357_000);
    let key = sign::SigningKey::from_secret([7; 32]);
    let firmware: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (sealed_bytes, sealed) =
        seal::seal_bytes(&seal::SealKey::from_bytes([5; 32]), [9; 16], &firmware)?;
    let artifact = dir.join("fw.enc");
    std::fs::write(&artifact, &sealed_bytes)?;
    let mut package = Package::from_json(include_bytes!(
        "../../tests/fixtures/packages/valid/seed-004-firmware.json"
    ))?;
    package.set_sealed(&sealed);
    let trusted_keys: sign::TrustedKeys = [key.public_key()].into_iter().collect();
    let envelope = sign::sign(&package, &[&key])?.to_json();
    let verified = sign::verify(envelope.as_bytes(), &trusted_keys, 1, &Limits::DEFAULT)?;
    let role = || Role {
        keys: vec![key.public_key()],
        threshold: 1,
    };
    let roles = Roles {
        root: role(),
        targets: role(),
        snapshot: role(),
        timestamp: role(),
    };
    let keys = [key.clone()];
    let (repo_dir, state_dir) = (dir.join("repo"), dir.join("state"));
    let metadata_url = repo_dir.join("metadata").display().to_string();
    let targets_url = repo_dir.join("targets").display().to_string();
    let mut file = std::fs::File::create(dir.join("fw.download"))?;

    // README: tuf
    use ota_host::tuf::{
        client::Client,
        repo::{Expiries, Repo},
    };

    let repo = Repo::create(&repo_dir, &roles, &keys, &Expiries::from(now))?;
    repo.add_package(
        "fw.enc",
        &artifact,
        verified.package(),
        &keys,
        &Expiries::from(now),
    )?;
    let root_json = std::fs::read(repo.root_path()?)?; // shipped with the device
    let trusted = Client::new(root_json, &metadata_url, &targets_url)? // http(s)://, file://, a directory
        .state_dir(&state_dir)
        .refresh(now)?; // blocking; a current-thread runtime inside
    let resolved = trusted.resolve("fw.enc")?; // VerifiedPackage, length, sha256
    trusted.download("fw.enc", &mut file)?; // length and hash checked as it streams
    let tc = trusted.trust_center();
    // README: end

    drop(file);
    assert_eq!(
        resolved.package.package(),
        verified.package(),
        "the target is the package published"
    );
    assert_eq!(resolved.package.id(), verified.id(), "the same statement");
    assert_eq!(resolved.length, sealed_bytes.len() as u64);
    assert_eq!(std::fs::read(dir.join("fw.download"))?, sealed_bytes);
    assert_eq!(tc.roles.len(), 4, "the four top-level roles");
    assert!(state_dir.join("timestamp.json").exists());
    println!("{}", serde_json::to_string(&tc)?);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
