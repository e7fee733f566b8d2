//! The publisher and the first checks a control plane or a device makes: seal a model, sign
//! its package, verify the envelope, check the package against a device, and open the
//! artifact chunk by chunk. README.md's first Rust snippet is the part between the `README`
//! markers; `cargo run -p ota-core --example publisher` runs it in a
//! temporary directory.

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ota-example-publisher-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The inputs a publisher has: a model, its package description, a device to check.
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let mut model = vec![0u8; 1 << 20];
    getrandom::fill(&mut model)?;
    std::fs::write(dir.join("model.engine"), &model)?;
    std::fs::write(
        dir.join("package.json"),
        include_bytes!("../../tests/fixtures/packages/valid/model-tensorrt-orin-nx.json"),
    )?;
    std::fs::write(
        dir.join("device.json"),
        include_bytes!("../../tests/fixtures/profiles/valid/orin-nx-line-camera.json"),
    )?;
    let signing_key = ota_core::keys::SigningKey::generate(&mut rng);

    // README: publisher
    use ota_core::{DeviceProfile, Limits, Package, compat, seal, sign};

    // Publisher: seal the model (gzip + AES-256-CBC, IV prefixed; the model-sync format), then
    // sign the package statement, which carries the 64 KiB chunk table.
    let key = seal::SealKey::generate(&mut rng);
    let mut sealer = seal::Sealer::with_rng(
        &key,
        &mut rng,
        std::fs::File::create(dir.join("model.enc"))?,
    )?;
    std::io::copy(
        &mut std::fs::File::open(dir.join("model.engine"))?,
        &mut sealer,
    )?;
    let (sealed, _) = sealer.finish()?;
    let mut package = Package::from_json(&std::fs::read(dir.join("package.json"))?)?; // errors name the field
    package.set_sealed(&sealed);
    let envelope = sign::sign(&package, &[&signing_key])?; // DSSE, Ed25519

    // Control plane / device: only a verified package goes further.
    let trusted: sign::TrustedKeys = [signing_key.public_key()].into_iter().collect();
    let verified = sign::verify(envelope.to_json().as_bytes(), &trusted, 1, &Limits::DEFAULT)?;
    let device = DeviceProfile::from_json(&std::fs::read(dir.join("device.json"))?)?;
    let report = compat::check(verified.package(), &device); // every reason, in order
    seal::open_chunked(
        std::fs::File::open(dir.join("model.enc"))?,
        &key,
        verified.chunks(),
        verified.expected(),
        std::fs::File::create(dir.join("model.out"))?,
    )?; // each chunk checked first
    // README: end

    assert_eq!(
        std::fs::read(dir.join("model.out"))?,
        model,
        "the opened model is the model"
    );
    println!("{}", report.to_json());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
