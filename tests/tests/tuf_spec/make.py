"""Repositories for the TUF specification tests (tests/tests/tuf_spec.rs), written with
python-tuf's metadata API, the specification's reference implementation, as an independent
repository writer.

    python3 make.py SCENARIO OUT

writes OUT/root.json (the root a client starts from) and OUT/step0, OUT/step1, ... (each a
repository as published at that step: metadata/ and targets/). Roles are stored under their
names quoted (urllib.parse.quote(name, "")), as the client asks for them.
"""

import copy
import hashlib
import os
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    Targets,
    TargetFile,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

# The tests judge expiry at this instant (tuf_spec.rs: NOW).
NOW = datetime(2026, 4, 15, tzinfo=timezone.utc)
FAR = NOW + timedelta(days=365)
PAST = NOW - timedelta(days=1)
TOP = ["root", "timestamp", "snapshot", "targets"]


class Repo:
    def __init__(self, consistent=True, keys=None):
        keys = keys or {}
        self.consistent = consistent
        self.signers = {}
        self.md = {}
        root = Root(expires=FAR, consistent_snapshot=consistent)
        for role in TOP:
            s = keys.get(role, CryptoSigner.generate_ed25519)()
            self.signers[role] = [s]
            root.add_key(s.public_key, role)
        self.md["root"] = Metadata(root)
        self.md["timestamp"] = Metadata(Timestamp(expires=FAR))
        self.md["snapshot"] = Metadata(Snapshot(expires=FAR))
        self.md["targets"] = Metadata(Targets(expires=FAR))
        self.bytes = {}
        self.roots = {}
        self.targets = {}
        self.hash_meta = False
        self.sign("root")

    def sign(self, role, signers=None):
        md = self.md[role]
        md.signatures.clear()
        for s in signers if signers is not None else self.signers[role]:
            md.sign(s, append=True)
        data = md.to_bytes(JSONSerializer(compact=False))
        self.bytes[role] = data
        if role == "root":
            self.roots[md.signed.version] = data
        return data

    def bump(self, role):
        self.md[role].signed.version += 1

    def targets_roles(self):
        return [r for r in self.md if r not in ("root", "timestamp", "snapshot")]

    def meta(self, data, version):
        if self.hash_meta:
            return MetaFile(version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})
        return MetaFile(version)

    def publish(self, bump=True, skip=()):
        """Signs every targets role, then the snapshot listing them, then the timestamp."""
        for role in self.targets_roles():
            if role not in skip:
                self.sign(role)
            self.md["snapshot"].signed.meta[f"{role}.json"] = self.meta(
                self.bytes[role], self.md[role].signed.version
            )
        if bump and "snapshot" in self.bytes:
            self.bump("snapshot")
        snap = self.sign("snapshot")
        self.md["timestamp"].signed.snapshot_meta = self.meta(
            snap, self.md["snapshot"].signed.version
        )
        if bump and "timestamp" in self.bytes:
            self.bump("timestamp")
        self.sign("timestamp")

    def delegate(self, parent, name, paths=None, prefixes=None, terminating=False):
        s = CryptoSigner.generate_ed25519()
        p = self.md[parent].signed
        if p.delegations is None:
            p.delegations = Delegations(keys={}, roles={})
        p.delegations.roles[name] = DelegatedRole(name, [], 1, terminating, paths, prefixes)
        p.add_key(s.public_key, name)
        self.md[name] = Metadata(Targets(expires=FAR))
        self.signers[name] = [s]

    def add_target(self, role, path, data, algorithms=("sha256",)):
        self.md[role].signed.targets[path] = TargetFile.from_data(path, data, list(algorithms))
        self.targets[path] = data

    def write(self, out):
        meta = os.path.join(out, "metadata")
        tdir = os.path.join(out, "targets")
        os.makedirs(meta, exist_ok=True)
        for v, data in self.roots.items():
            put(os.path.join(meta, f"{v}.root.json"), data)
        put(os.path.join(meta, "root.json"), self.bytes["root"])
        put(os.path.join(meta, "timestamp.json"), self.bytes["timestamp"])
        for role in ["snapshot"] + self.targets_roles():
            name = quote(role, "")
            data = self.bytes[role]
            put(os.path.join(meta, f"{name}.json"), data)
            version = json_version(data)
            put(os.path.join(meta, f"{version}.{name}.json"), data)
        for path, data in self.targets.items():
            if self.consistent:
                d, _, base = path.rpartition("/")
                for h in ("sha256", "sha512"):
                    digest = hashlib.new(h, data).hexdigest()
                    put(os.path.join(tdir, d, f"{digest}.{base}"), data)
            else:
                put(os.path.join(tdir, path), data)


def json_version(data):
    import json

    return json.loads(data)["signed"]["version"]


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def rotate_root(r, signers_old=None, expires=FAR):
    """A new root version with a new root key, signed by the old and the new keys."""
    new = CryptoSigner.generate_ed25519()
    root = r.md["root"].signed
    old = r.signers["root"]
    for s in old:
        root.revoke_key(s.public_key.keyid, "root")
    root.add_key(new.public_key, "root")
    root.version += 1
    root.expires = expires
    r.signers["root"] = [new]
    r.sign("root", (signers_old if signers_old is not None else old) + [new])


# --- The scenarios, one per behaviour. --------------------------------------------------------


def base(**kw):
    r = Repo(**kw)
    r.add_target("targets", "file.txt", b"hello tuf")
    r.publish(bump=False)
    return r


def persists_each_role_as_it_verifies(out):
    r = base()
    r.write(f"{out}/step0")
    rotate_root(r)
    r.bump("targets")
    r.publish()
    good_snapshot = copy.deepcopy(r.bytes)
    # The snapshot is signed by a key the root does not list.
    r.sign("snapshot", [CryptoSigner.generate_ed25519()])
    r.write(f"{out}/step1")
    return r, good_snapshot


def root_rotation_stops_at_a_root_with_too_few_signatures(out):
    r = base()
    r.write(f"{out}/step0")
    rotate_root(r)
    # Version 3 is signed by its new key only, not by version 2's.
    rotate_root(r, signers_old=[])
    r.publish()
    r.write(f"{out}/step1")


def root_rotation_to_an_expired_root(out):
    r = base()
    r.write(f"{out}/step0")
    rotate_root(r, expires=PAST)
    r.publish()
    r.write(f"{out}/step1")


def root_rotation_then_snapshot_not_found(out):
    r = base()
    r.write(f"{out}/step0")
    rotate_root(r)
    r.publish()
    r.write(f"{out}/step1")
    for f in os.listdir(f"{out}/step1/metadata"):
        if f.endswith("snapshot.json"):
            os.remove(f"{out}/step1/metadata/{f}")


def timestamp_content_changed_without_new_version(out):
    r = base()
    r.write(f"{out}/step0")
    # A new snapshot, and a timestamp naming it but keeping version 1.
    r.bump("snapshot")
    r.sign("snapshot")
    r.md["timestamp"].signed.snapshot_meta = MetaFile(r.md["snapshot"].signed.version)
    r.md["timestamp"].signed.expires = FAR + timedelta(days=1)
    r.sign("timestamp")
    r.write(f"{out}/step1")


def snapshot_version_does_not_match_url(out):
    r = base()
    # The timestamp names snapshot 2; 2.snapshot.json says version 3.
    r.md["snapshot"].signed.version = 3
    r.sign("snapshot")
    r.md["timestamp"].signed.snapshot_meta = MetaFile(2)
    r.sign("timestamp")
    r.write(f"{out}/step0")
    os.rename(f"{out}/step0/metadata/3.snapshot.json", f"{out}/step0/metadata/2.snapshot.json")


def snapshot_hash_mismatch(out):
    r = Repo()
    r.hash_meta = True
    r.add_target("targets", "file.txt", b"hello tuf")
    r.publish(bump=False)
    r.write(f"{out}/step0")
    # Same version, other bytes (re-signed with a changed expiry) than the timestamp hashes.
    r.md["snapshot"].signed.expires = FAR + timedelta(days=2)
    r.sign("snapshot")
    put(f"{out}/step0/metadata/1.snapshot.json", r.bytes["snapshot"])


def targets_hash_mismatch(out):
    r = Repo()
    r.hash_meta = True
    r.add_target("targets", "file.txt", b"hello tuf")
    r.publish(bump=False)
    r.write(f"{out}/step0")
    r.md["targets"].signed.expires = FAR + timedelta(days=2)
    r.sign("targets")
    put(f"{out}/step0/metadata/1.targets.json", r.bytes["targets"])


def incorrect_metadata_type(out):
    r = base()
    r.write(f"{out}/step0")
    # timestamp.json whose signed part is a snapshot, signed by the timestamp key.
    md = Metadata(Snapshot(version=2, expires=FAR))
    md.sign(r.signers["timestamp"][0])
    put(f"{out}/step0/metadata/timestamp.json", md.to_bytes(JSONSerializer(compact=False)))


def expired(role):
    def make(out):
        r = Repo()
        r.add_target("targets", "file.txt", b"hello tuf")
        r.md[role].signed.expires = PAST
        if role == "root":
            r.sign("root")
        r.publish(bump=False)
        r.write(f"{out}/step0")

    return make


def target_hashes_all_checked(out):
    r = Repo()
    r.add_target("targets", "good.txt", b"good", ("sha256", "sha512"))
    r.add_target("targets", "bad512.txt", b"bad", ("sha256", "sha512"))
    # bad512.txt: its sha256 is right, its sha512 wrong.
    r.md["targets"].signed.targets["bad512.txt"].hashes["sha512"] = hashlib.sha512(b"other").hexdigest()
    r.publish(bump=False)
    r.write(f"{out}/step0")


def delegation_tree(out):
    """targets -> A (paths *), B (paths *); A -> C (paths *.txt); C has deep.txt, B has
    deep.txt and b.txt; T (terminating, paths term/*) -> nothing, U (paths term/*) has
    term/x; H (path_hash_prefixes of hashed.txt) has hashed.txt; D (paths dir/*) has
    dir/sub/f (which D's pattern does not cover)."""
    r = Repo()
    r.delegate("targets", "T", paths=["term/*"], terminating=True)
    r.delegate("targets", "U", paths=["term/*"])
    r.delegate("targets", "A", paths=["*"])
    r.delegate("targets", "B", paths=["*"])
    r.delegate("A", "C", paths=["*.txt"])
    prefix = hashlib.sha256(b"hashed.txt").hexdigest()[:3]
    r.delegate("targets", "H", paths=None, prefixes=[prefix])
    r.delegate("targets", "D", paths=["dir/*"])
    r.add_target("C", "deep.txt", b"from C")
    r.add_target("B", "deep.txt", b"from B")
    r.add_target("B", "b.txt", b"only B")
    r.add_target("U", "term/x", b"behind a terminating role")
    r.add_target("H", "hashed.txt", b"by hash prefix")
    r.add_target("D", "dir/sub/f", b"not covered")
    r.publish(bump=False)
    r.write(f"{out}/step0")


def delegation_chain_longer_than_max(out):
    """targets -> R0 -> R1 -> ... -> R39, the target in R39."""
    r = Repo()
    parent = "targets"
    for i in range(40):
        r.delegate(parent, f"R{i}", paths=["*"])
        parent = f"R{i}"
    r.add_target(parent, "far.txt", b"forty roles down")
    r.add_target("R2", "near.txt", b"three roles down")
    r.publish(bump=False)
    r.write(f"{out}/step0")


def delegated_role_missing_from_snapshot(out):
    r = Repo()
    r.delegate("targets", "A", paths=["*"])
    r.add_target("A", "a.txt", b"in A")
    r.publish(bump=False)
    del r.md["snapshot"].signed.meta["A.json"]
    r.sign("snapshot")
    r.md["timestamp"].signed.snapshot_meta = MetaFile(1)
    r.sign("timestamp")
    r.write(f"{out}/step0")


def role_names_that_need_quoting(out):
    r = Repo()
    for i, name in enumerate(["?", "#", "/delegatedrole", "../delegatedrole"]):
        r.delegate("targets", name, paths=[f"t{i}"])
        r.add_target(name, f"t{i}", f"in {name}".encode())
    r.publish(bump=False)
    r.write(f"{out}/step0")


def consistent_snapshot_targets_by_hash(out):
    r = Repo()
    r.add_target("targets", "dir/sub/file.txt", b"a target in a directory")
    r.publish(bump=False)
    r.write(f"{out}/step0")


def ecdsa_and_rsa_keys(out):
    r = Repo(
        keys={
            "timestamp": CryptoSigner.generate_ecdsa,
            "snapshot": CryptoSigner.generate_rsa,
            "targets": CryptoSigner.generate_ecdsa,
        }
    )
    r.add_target("targets", "file.txt", b"hello tuf")
    r.publish(bump=False)
    r.write(f"{out}/step0")


def bench_300_targets(out):
    """The refresh measurement: 300 targets, each with a custom statement."""
    r = Repo()
    for i in range(300):
        data = f"model {i}".encode() * 64
        r.add_target("targets", f"fleet/model-{i:04}.enc", data)
        r.md["targets"].signed.targets[f"fleet/model-{i:04}.enc"].unrecognized_fields["custom"] = {
            "ota": {"package": "x" * 600}
        }
    r.publish(bump=False)
    r.write(f"{out}/step0")


def bench_1000_hashed_bins(out):
    """The delegation measurement: targets delegates to 1,000 bins by path_hash_prefixes
    (each bin the 3-hex-digit prefixes p with p % 1000 == its number, one key shared by all),
    each bin listing one target."""
    r = Repo()
    s = CryptoSigner.generate_ed25519()
    t = r.md["targets"].signed
    t.delegations = Delegations(keys={}, roles={})
    prefixes = {i: [] for i in range(1000)}
    for p in range(4096):
        prefixes[p % 1000].append(f"{p:03x}")
    for i in range(1000):
        name = f"bin-{i:03}"
        t.delegations.roles[name] = DelegatedRole(name, [], 1, False, None, prefixes[i])
        t.add_key(s.public_key, name)
        r.md[name] = Metadata(Targets(expires=FAR))
        r.signers[name] = [s]
    placed = set()
    n = 0
    while len(placed) < 1000:
        path = f"fleet/model-{n:05}.enc"
        n += 1
        b = int(hashlib.sha256(path.encode()).hexdigest()[:3], 16) % 1000
        if b in placed:
            continue
        placed.add(b)
        r.add_target(f"bin-{b:03}", path, path.encode() * 16)
    r.publish(bump=False)
    r.write(f"{out}/step0")
    # The target the measurement searches for.
    with open(f"{out}/target", "w") as f:
        f.write(path)


SCENARIOS = {
    f.__name__: f
    for f in [
        persists_each_role_as_it_verifies,
        root_rotation_stops_at_a_root_with_too_few_signatures,
        root_rotation_to_an_expired_root,
        root_rotation_then_snapshot_not_found,
        timestamp_content_changed_without_new_version,
        snapshot_version_does_not_match_url,
        snapshot_hash_mismatch,
        targets_hash_mismatch,
        incorrect_metadata_type,
        target_hashes_all_checked,
        delegation_tree,
        delegation_chain_longer_than_max,
        delegated_role_missing_from_snapshot,
        role_names_that_need_quoting,
        consistent_snapshot_targets_by_hash,
        ecdsa_and_rsa_keys,
        bench_300_targets,
        bench_1000_hashed_bins,
    ]
}
for _role in TOP:
    SCENARIOS[f"expired_{_role}"] = expired(_role)


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    SCENARIOS[scenario](out)
    # The root a client starts from: version 1, as step0 published it.
    with open(f"{out}/step0/metadata/1.root.json", "rb") as f:
        put(f"{out}/root.json", f.read())


if __name__ == "__main__":
    main()
