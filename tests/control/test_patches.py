"""The Max, Pure Data and TouchDesigner controllers in patches/.

Statically: every address a patch can send is in the server's own table and is accepted by its protocol, the
controls' ranges are the table's ranges, the .maxpat is valid JSON whose lines join existing inlets and outlets,
and the address table in patches/README.md is the generated one. Live: the Pd patch runs under real headless
Pure Data against a running `serve`, plays every control and hears the feedback; it finds a server started after
it; and its latent drawing takes the model's size. The TouchDesigner script runs against `serve` with the two
TouchDesigner calls it makes (`op()`, `sendOSC`) done by a UDP socket.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from liveshtr.bundle import load_bundle
from liveshtr.commands.common import DEMO_MODEL
from liveshtr.commands.controls import BEGIN, END, tables
from liveshtr.control.commands import Commands
from liveshtr.control.osc_protocol import TELEMETRY_FIELDS, OscProtocol, client_addresses, feedback_addresses
from liveshtr.live.params import LATENT_RANGE, Params
from tests.helpers import ask, cli, message, one_line_error, osc_port, start_serve, stop_serve, wait_started

PATCHES = Path(__file__).resolve().parents[2] / "patches"
HARNESS = Path(__file__).parent / "pd" / "listen.pd"
LATENT = 8  # the demo model's latent dimensions, which the patches start with


# -- reading the patches ---------------------------------------------------------------------------------------


def pd_canvases(path: Path) -> list[dict]:
    """Each canvas of a Pd file: its boxes (kind, tokens) in Pd's numbering, and its connections."""
    text = path.read_text()
    records = [r.strip() for r in re.split(r"(?<!\\);\s*\n", text) if r.strip()]
    stack, done = [], []
    for record in records:
        tokens = record.split()
        if tokens[:2] == ["#N", "canvas"]:
            stack.append({"boxes": [], "connects": [], "name": tokens[6] if len(tokens) > 7 else path.name})
        elif tokens[:2] == ["#X", "restore"]:
            done.append(stack.pop())
            stack[-1]["boxes"].append(("restore", tokens[4:]))
        elif tokens[:2] == ["#X", "connect"]:
            stack[-1]["connects"].append(tuple(int(t) for t in tokens[2:6]))
        elif tokens[0] == "#X" and tokens[1] in ("obj", "msg", "text", "floatatom", "symbolatom", "listbox"):
            stack[-1]["boxes"].append((tokens[1], tokens[4:] if tokens[1] != "floatatom" else tokens[2:]))
    assert len(stack) == 1, f"{path}: unbalanced canvases"
    return done + stack


def pd_objects(path: Path, name: str) -> list[list[str]]:
    return [t for c in pd_canvases(path) for kind, t in c["boxes"] if kind == "obj" and t and t[0] == name]


def pd_addresses() -> set[str]:
    """Every OSC address the Pd patch can send, with `$` arguments resolved from where the patch gives them."""
    main = PATCHES / "liveshtr.pd"
    addresses = set()
    for tokens in pd_objects(main, "oscformat"):
        addresses.add("/" + "/".join(tokens[1:]))
    (fader_format,) = pd_objects(PATCHES / "liveshtr-fader.pd", "oscformat")
    for fader in pd_objects(main, "liveshtr-fader"):
        addresses.add("/" + "/".join(fader[1] if t == "\\$1" else t for t in fader_format[1:]))
    # liveshtr-axis addresses its [oscformat] with `set liveshtr $1 $2`: $1 one of its [symbol ...] messages,
    # $2 a dimension
    (axis,) = pd_canvases(PATCHES / "liveshtr-axis.pd")
    messages = [t for kind, t in axis["boxes"] if kind == "msg"]
    symbols = [t[1] for t in messages if t[0] == "symbol"]
    (address_set,) = [t for t in messages if t[:2] == ["set", "liveshtr"]]
    assert address_set[2:] == ["\\$1", "\\$2"] and symbols == ["latent", "target"], address_set
    addresses |= {f"/liveshtr/{s}/{i}" for s in symbols for i in range(LATENT)}
    (axis_format,) = pd_objects(PATCHES / "liveshtr-axis.pd", "oscformat")
    addresses.add("/" + "/".join(axis_format[1:]))  # its address until the first `set`
    return addresses


def maxpat() -> dict:
    return json.loads((PATCHES / "liveshtr.maxpat").read_text())["patcher"]


def max_boxes() -> dict[str, dict]:
    return {b["box"]["id"]: b["box"] for b in maxpat()["boxes"]}


def max_addresses() -> set[str]:
    addresses = set()
    for box in max_boxes().values():
        words = box.get("text", "").split()
        if box["maxclass"] == "message" and words and words[0].startswith("/"):
            addresses.add(words[0])
        elif box["maxclass"] == "newobj" and words[0] in ("prepend", "sprintf") and words[1].startswith("/"):
            addresses |= {words[1].replace("%ld", str(i)) for i in range(LATENT)}
    return addresses


def sample_args(address: str, params: Params) -> tuple:
    """Arguments that a patch sends with `address` (a number per value, a port for subscribe)."""
    name = address.split("/")[2]
    if name in ("subscribe", "unsubscribe"):
        return (9002,)
    if name == "scene":
        return ("verse", 0.0) if address.endswith("/recall") else ("verse",)
    if name == "record":
        return ()
    if name == "model":
        return (1, 2.0)
    param = params.table[name]
    if param.action:
        return ()
    return (0.5,) * (param.size if address.count("/") == 2 else 1)


class Takes:
    """What OscProtocol asks of a recorder (the real one: tests/live/test_recorder.py)."""

    folder = "sets/now"

    def start_take(self) -> str:
        return self.folder

    def stop_take(self) -> None:
        pass


class Set:
    """What OscProtocol asks of a set list (the real one: tests/live/test_setlist.py)."""

    def __init__(self):
        self.models = [SimpleNamespace(name="first"), SimpleNamespace(name="second")]

    def switch(self, key, seconds):
        assert key in (0, 1) and 0 <= seconds <= 60
        return self.models[key]

    def loads(self, key) -> bool:
        return False

    def describe(self) -> list[dict]:
        return [{"index": i, "name": m.name, "playing": i == 0} for i, m in enumerate(self.models)]


def assert_accepted(addresses: set[str]) -> None:
    from tests.helpers import scenes_for

    params = Params(LATENT, tempo=120.0)
    with tempfile.TemporaryDirectory() as folder:
        scenes = scenes_for(params, Path(folder) / "scenes.json")
        scenes.save("verse")  # what a patch recalls
        protocol = OscProtocol(Commands(params, scenes=scenes, recorder=Takes(), setlist=Set()))
        for address in sorted(addresses):
            assert in_address_table(params, address), f"{address} is not in the server's address table"
            replies = protocol.handle(address, sample_args(address, params), ("127.0.0.1", 9))
            assert not [r for r in replies if r.address == "/liveshtr/error"], (address, replies)


def in_address_table(params: Params, address: str) -> bool:
    """Whether `address` is a row of the client table (README, `liveshtr controls`); a `<i>` row matches each
    valid index."""
    for row in client_addresses(params):
        if row.address == address:
            return True
        stem = row.address.removesuffix("/<i>")
        if stem != row.address and address.startswith(stem + "/"):
            index = address[len(stem) + 1 :]
            if index.isdigit() and int(index) < params.table[stem.rsplit("/", 1)[1]].size:
                return True
    return False


# -- static checks ---------------------------------------------------------------------------------------------


def test_every_address_the_pd_patch_sends_is_the_servers():
    addresses = pd_addresses()
    assert {"/liveshtr/temperature", "/liveshtr/latent", "/liveshtr/panic", "/liveshtr/subscribe"} <= addresses
    assert_accepted(addresses)


def test_every_address_the_max_patch_sends_is_the_servers_and_it_routes_only_what_comes_back():
    addresses = max_addresses()
    assert {"/liveshtr/temperature", "/liveshtr/latent", "/liveshtr/freeze", "/liveshtr/reset"} <= addresses
    assert {"/liveshtr/panic", "/liveshtr/subscribe", "/liveshtr/target/7", "/liveshtr/latent/0"} <= addresses
    assert_accepted(addresses)
    params = Params(LATENT, tempo=120.0)
    back = {r.address for r in feedback_addresses(params)} | {f"/liveshtr/{n}" for n in params.table}
    (route,) = [b["text"].split() for b in max_boxes().values() if b.get("text", "").startswith("route /")]
    assert set(route[1:]) <= back, set(route[1:]) - back


def test_patch_controls_have_the_servers_ranges():
    table = Params(LATENT, tempo=120.0).table
    faders = pd_objects(PATCHES / "liveshtr.pd", "liveshtr-fader")
    assert {f[1] for f in faders} == {"temperature", "gain", "mix", "drift", "tempo", "prime"}
    for _, name, low, high in faders:
        assert (float(low), float(high)) == (table[name].low, table[name].high), name
    boxes, lines = max_boxes(), maxpat()["lines"]
    following = {}
    for line in lines:
        following.setdefault(line["patchline"]["source"][0], []).append(boxes[line["patchline"]["destination"][0]])
    sliders = [b for b in boxes.values() if b["maxclass"] == "slider"]
    assert len(sliders) == 6
    for slider in sliders:
        (name,) = [
            b["text"].split("/")[-1] for b in following[slider["id"]] if b.get("text", "").startswith("prepend /")
        ]
        assert (slider["min"], slider["min"] + slider["size"]) == pytest.approx((table[name].low, table[name].high))
    (multi,) = [b for b in boxes.values() if b["maxclass"] == "multislider"]
    assert multi["setminmax"] == [-LATENT_RANGE, LATENT_RANGE] and multi["size"] == LATENT
    (pad,) = [b for b in boxes.values() if b["maxclass"] == "pictslider"]
    scales = [float(b["text"].split()[1]) for b in following[pad["id"]] if b.get("text", "").startswith("/ ")]
    assert len(scales) == 2  # x and y
    for scale in scales:
        assert pad["rightvalue"] / scale == pad["topvalue"] / scale == LATENT_RANGE
        assert pad["leftvalue"] / scale == pad["bottomvalue"] / scale == -LATENT_RANGE
    main = (PATCHES / "liveshtr.pd").read_text()
    assert f"#X coords 0 {LATENT_RANGE:g} {LATENT} -{LATENT_RANGE:g}" in main  # the latent drawing
    assert main.count(f" -{LATENT_RANGE:g} {LATENT_RANGE:g} 0 0 empty empty") == 2  # the XY pad's sliders


# What Max 8/9 gives each object (inlets, outlets), from its reference and from patches it saved. A line to an
# inlet or from an outlet that the object lacks is dropped silently when Max opens the patch.
MAX_IO = {
    "udpsend": (1, 0),
    "udpreceive": (1, 1),
    "loadbang": (1, 1),
    "prepend": (1, 1),
    "metro": (2, 1),
    "zl": (2, 2),
    "delay": (2, 1),
    "s": (1, 0),
    "r": (0, 1),
    "print": (1, 0),
    "key": (0, 4),
    "+": (2, 1),
    "/": (2, 1),
    "i": (2, 1),
    "append": (2, 1),
}
MAX_UI_IO = {
    "slider": (1, 1),
    "flonum": (1, 2),
    "number": (1, 2),
    "toggle": (1, 1),
    "button": (1, 1),
    "message": (2, 1),
    "comment": (1, 0),
    "multislider": (1, 2),
    "pictslider": (2, 2),
    "umenu": (1, 3),
    "textedit": (1, 4),
}


def max_io(box: dict) -> tuple[int, int]:
    if box["maxclass"] != "newobj":
        return MAX_UI_IO[box["maxclass"]]
    name, *args = box["text"].split()
    if name in ("t", "unpack"):
        return 1, len(args)
    if name == "route":
        return len(args) + 1, len(args) + 1
    if name == "sel":  # a right inlet sets the value to match, with one argument only
        return (2 if len(args) == 1 else 1), len(args) + 1
    if name == "change":
        return 1, 3
    if name == "pack":
        return len(args), 1
    if name == "gate":
        return 2, int(args[0])
    if name == "sprintf":
        return max(1, box["text"].count("%")), 1
    assert name in MAX_IO, f"{name}: add its inlets and outlets to MAX_IO"
    return MAX_IO[name]


def test_the_maxpat_is_valid_json_whose_lines_join_existing_inlets_and_outlets():
    patcher = maxpat()
    assert patcher["classnamespace"] == "box" and patcher["appversion"]["major"] >= 8
    boxes = max_boxes()
    assert len(boxes) == len(patcher["boxes"]), "box ids must be unique"
    for box in boxes.values():
        assert (box["numinlets"], box["numoutlets"]) == max_io(box), box
        assert len(box.get("outlettype", [])) == box["numoutlets"], box
    sources = set()
    for line in patcher["lines"]:
        (src, outlet), (dst, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
        assert src in boxes and dst in boxes, line
        assert 0 <= outlet < boxes[src]["numoutlets"] and 0 <= inlet < boxes[dst]["numinlets"], line
        sources.add(src)
    lonely = [b["text"] for i, b in boxes.items() if b["maxclass"] == "newobj" and b["numoutlets"] and i not in sources]
    assert lonely == [], f"objects whose output goes nowhere: {lonely}"


def test_pd_files_connect_only_existing_boxes():
    for path in PATCHES.glob("*.pd"):
        for canvas in pd_canvases(path):
            n = len(canvas["boxes"])
            for a, _, b, _ in canvas["connects"]:
                assert 0 <= a < n and 0 <= b < n, (path.name, canvas["name"], a, b)


def test_the_address_table_in_patches_readme_is_the_generated_one():
    readme = (PATCHES / "README.md").read_text()
    committed = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)].strip()
    demo = load_bundle(DEMO_MODEL)
    assert committed == tables(Params.for_bundle(demo), "models/demo", markdown=True).strip(), (
        "patches/README.md is out of date: run `liveshtr controls --update patches/README.md`"
    )
    for row in client_addresses(Params(LATENT, tempo=120.0)):
        assert f"`{row.address}`" in committed


def test_controls_prints_a_models_table_and_updates_a_readme(tmp_path):
    shown = cli("controls")
    assert shown.returncode == 0 and "8 latent dimensions" in shown.stdout
    assert "/liveshtr/latent/<i>" in shown.stdout and "i = 0..7" in shown.stdout
    readme = tmp_path / "README.md"
    readme.write_text(f"# mine\n\n{BEGIN}\nstale table\n{END}\nkept\n")
    assert cli("controls", "--update", str(readme)).stdout.strip().endswith("updated")
    text = readme.read_text()
    assert text.startswith("# mine") and text.endswith(f"{END}\nkept\n") and "stale" not in text
    assert cli("controls", "--update", str(readme)).stdout.strip().endswith("already up to date")
    readme.write_text("no markers\n")
    one_line_error(cli("controls", "--update", str(readme)), "README.md", BEGIN)
    assert readme.read_text() == "no markers\n"
    one_line_error(cli("controls", str(tmp_path / "nowhere")), "no such model folder")


def test_touchdesigner_channel_names_are_the_servers_addresses():
    readme = (PATCHES / "touchdesigner" / "README.md").read_text()
    table = Params(LATENT, tempo=120.0).table
    addresses = set()
    rows = [
        line.strip().strip("|").split("|") for line in readme.splitlines() if line.strip().startswith("| `liveshtr/")
    ]
    assert len(rows) == 8, rows
    for names, span, _ in rows:
        names = re.findall(r"`(liveshtr/[a-z]+)(?:/(\d+))?`", names)  # one, or the first and last dimension
        low, high = (0, 1) if span.strip() == "0 or 1" else span.strip().split("..")
        param = table[names[0][0].split("/")[1]]
        assert (float(low), float(high)) == (param.low, param.high), names
        if names[0][1]:
            assert [int(i) for _, i in names] == [0, LATENT - 1], names
            addresses |= {f"/{names[0][0]}/{i}" for i in range(LATENT)}
        else:
            addresses.add(f"/{names[0][0]}")
    assert_accepted(addresses)


def test_touchdesigner_callbacks_in_its_readme_call_the_script():
    readme = (PATCHES / "touchdesigner" / "README.md").read_text()
    script = ast.parse((PATCHES / "touchdesigner" / "liveshtr.py").read_text())
    functions = {f.name for f in script.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("_")}
    snippets = [textwrap.dedent(s) for s in re.findall(r"```python\n(.*?)\n *```", readme, re.S)]
    assert len(snippets) == 4
    signatures = {
        "onValueChange": ["channel", "sampleIndex", "val", "prev"],
        "onOffToOn": ["channel", "sampleIndex", "val", "prev"],
        "onReceiveOSC": ["dat", "rowIndex", "message", "bytes", "timeStamp", "address", "args", "peer"],
        "onFrameStart": ["frame"],
    }
    for snippet in snippets:
        (callback,) = ast.parse(snippet).body
        assert [a.arg for a in callback.args.args] == signatures[callback.name], callback.name
        called = re.findall(r"mod\.liveshtr\.(\w+)\(", snippet)
        assert called and set(called) <= functions, called


# -- Pure Data, live ---------------------------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pd:
    """Headless Pure Data with the patch and the test harness; its console lines arrive through a thread."""

    def __init__(self, sends: str):
        if shutil.which("pd") is None:
            pytest.fail("pd is missing (Debian package puredata-core; `make test` installs it)")
        cmd = ["pd", "-nogui", "-noaudio", "-stderr", "-open", str(PATCHES / "liveshtr.pd"), "-open", str(HARNESS)]
        self.proc = subprocess.Popen(
            [*cmd, "-send", sends], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.heard: list[str] = []  # everything but the telemetry, which comes 20 times a second
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line.strip())

    def _keep(self, line: str) -> None:
        if not line.startswith("heard-telemetry"):
            self.heard.append(line)

    def wait_for(self, done, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.heard) and time.monotonic() < deadline:
            try:
                self._keep(self.lines.get(timeout=0.1))
            except queue.Empty:
                pass
        assert done(self.heard), self.heard

    def stop(self) -> None:
        """Stop it by its PID; nothing it printed may be an error."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        time.sleep(0.1)  # the reader's last lines
        while not self.lines.empty():
            self._keep(self.lines.get())
        problems = [h for h in self.heard if re.search(r"error|couldn't create|connection failed|bad arguments", h)]
        assert problems == [], problems


def test_the_pd_patch_plays_every_control_and_follows_the_server(served):
    port, proc, stats = served
    sends = "; ".join(
        [
            f"liveshtr-listen {free_udp_port()}",
            f"liveshtr-connect {port}",
            "liveshtr-temperature 2.5",
            "liveshtr-mix 0.25",
            "liveshtr-drift 0.5",
            "liveshtr-prime 0.75",
            "liveshtr-gain 0.8",
            "liveshtr-freeze 1",
            "liveshtr-xy-param 1",
            "liveshtr-xy-xdim 5",
            "liveshtr-xy-x 2",
            "liveshtr-xy-y -3",  # y dimension: 1 by default
            "liveshtr-reset bang",
            "liveshtr-temperature 9",  # out of range: clamped by the slider itself, never sent as 9
            "test-later liveshtr-latent 0 0 0 0 -1.5",  # drawn into the array once connected
        ]
    )
    pd = Pd(sends)
    try:
        pd.wait_for(lambda h: any(line.startswith("heard-latent: 0 0 0 -1.5") for line in h))
        subprocess.run(["oscsend", "127.0.0.1", str(port), "/liveshtr/mix", "f", "0.6"], check=True)  # someone else
        pd.wait_for(lambda h: "heard-mix: 0.6" in h, timeout=5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # the page's panic, say: Pd hears gain 0
            s.sendto(message("/liveshtr/panic"), ("127.0.0.1", port))
        pd.wait_for(lambda h: "heard-gain: 0" in h, timeout=5)
    finally:
        pd.stop()
    heard = pd.heard
    state = {address.split("/")[2]: values for address, values in ask(port, message("/liveshtr/get"))}
    assert state["temperature"] == [pytest.approx(4.0)]  # the slider's top, where 9 put it
    assert state["drift"] == [pytest.approx(0.5)] and state["prime"] == [pytest.approx(0.75)]
    assert state["mix"] == [pytest.approx(0.6)] and state["freeze"] == [1.0] and state["reset"] == [1.0]
    assert state["latent"] == pytest.approx([0, 0, 0, -1.5, 0, 0, 0, 0])
    assert state["target"] == pytest.approx([0, -3, 0, 0, 0, 2, 0, 0])
    assert "heard-gain: 1" in heard  # the whole state arrived on subscribing
    assert "heard-temperature: 4" in heard  # its own change comes back too (2.5 then 9 coalesce to the last)
    assert "heard-status: symbol connected" in heard and "liveshtr: connected: feedback arriving" in heard
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    summary = json.loads(stats.read_text())
    assert summary["osc"]["errors"] == 0  # nothing the patch sent was malformed
    assert summary["underruns"] == 0


def test_the_pd_patch_saves_and_recalls_scenes_and_starts_and_stops_takes(tmp_path):
    scenes, sets = tmp_path / "scenes.json", tmp_path / "sets"
    proc = start_serve("--sink", "null", "--no-web", "--scenes", str(scenes), "--record", str(sets))
    pd = None
    try:
        port = osc_port(wait_started(proc))
        pd = Pd(
            "; ".join(
                [
                    f"liveshtr-listen {free_udp_port()}",
                    f"liveshtr-connect {port}",
                    "liveshtr-temperature 3",
                    "liveshtr-scene-name symbol verse",
                    "liveshtr-scene-save bang",
                    "liveshtr-temperature 1",
                    "liveshtr-scene-seconds 0",
                    "liveshtr-scene-recall bang",
                    "liveshtr-rec-stop bang",
                    "liveshtr-rec-start bang",
                ]
            )
        )
        pd.wait_for(lambda h: "heard-temperature: 3" in h and "heard-temperature: 1" in h)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (scenes.exists() and "verse" in scenes.read_text()):
            time.sleep(0.1)
        assert json.loads(scenes.read_text())["scenes"]["verse"]["temperature"] == 3.0
        time.sleep(0.5)
        assert dict(ask(port, message("/liveshtr/get", "temperature")))["/liveshtr/temperature"] == [3.0]
    finally:
        if pd is not None:
            pd.stop()
        assert stop_serve(proc) == 0, proc.stderr.read()
    (session,) = sets.iterdir()
    takes = json.loads((session / "session.json").read_text())["takes"]
    assert [t["file"] for t in takes] == ["take-1.wav", "take-2.wav"] and all(t["blocks"] for t in takes)


def test_the_pd_patch_switches_the_set_and_follows_the_new_models_table(other_model):
    proc = start_serve(str(DEMO_MODEL), str(other_model), "--sink", "null", "--no-web", "--status-every", "0")
    pd = None
    try:
        port = osc_port(wait_started(proc))
        pd = Pd(
            "; ".join(
                [
                    f"liveshtr-listen {free_udp_port()}",
                    f"liveshtr-connect {port}",
                    "liveshtr-model-seconds 0.5",
                    "test-later liveshtr-model 1",
                ]
            )
        )
        pd.wait_for(lambda h: "heard-model: 1 groove-16k" in h and "heard-playing: set groove-16k" in h)
        pd.wait_for(lambda h: any(line.startswith("heard-latent:") and len(line.split()) == 5 for line in h))
        models = ask(port, message("/liveshtr/models"))
        assert models == [("/liveshtr/model", [0, "demo", 0]), ("/liveshtr/model", [1, "groove-16k", 1])]
    finally:
        if pd is not None:
            pd.stop()
        assert stop_serve(proc) == 0, proc.stderr.read()


def test_the_pd_patch_finds_a_server_started_after_it(tmp_path):
    port = free_udp_port()
    pd, proc = Pd(f"liveshtr-listen {free_udp_port()}; liveshtr-connect {port}"), None
    try:
        pd.wait_for(lambda h: any("no feedback from the server" in line for line in h))
        proc = start_serve("--sink", "null", "--status-every", "0", "--osc-port", str(port))
        wait_started(proc)
        pd.wait_for(lambda h: "heard-status: symbol connected" in h, timeout=10)
    finally:
        if proc is not None:
            stop_serve(proc)
        pd.stop()
    assert "heard-gain: 1" in pd.heard  # it subscribed again and got the whole state


def test_the_pd_latent_drawing_takes_the_models_size_and_is_not_echoed():
    """A server speaking for a 4-dimensional model (this test's socket): the array becomes 4 long."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        pd = Pd(
            f"liveshtr-listen {free_udp_port()}; liveshtr-connect {server.getsockname()[1]}; test-later test-size bang"
        )
        received = []
        try:
            data, pd_address = server.recvfrom(65535)
            subscribe = OscPacket(data).messages[0].message
            assert subscribe.address == "/liveshtr/subscribe"
            feedback = (pd_address[0], int(subscribe.params[0]))  # where the patch listens
            for address, values in [("/liveshtr/latent", [1.0, -2.0, 0.5, 3.0]), ("/liveshtr/telemetry", [0.0] * 10)]:
                builder = OscMessageBuilder(address)
                for v in values:
                    builder.add_arg(v)
                server.sendto(builder.build().dgram, feedback)
            pd.wait_for(lambda h: any(line.startswith("heard-size:") for line in h), timeout=10)
            server.settimeout(0.5)
            try:
                while True:
                    received += [m.message.address for m in OscPacket(server.recv(65535)).messages]
            except TimeoutError:
                pass
        finally:
            pd.stop()
    assert "heard-size: 4" in pd.heard
    assert "heard-latent: 1 -2 0.5 3" in pd.heard
    assert "/liveshtr/latent" not in received  # what the server said is not sent back to it


# -- TouchDesigner's script, against serve -------------------------------------------------------------------


class OscOutDat:
    """What the script uses of TouchDesigner's OSC Out DAT: sendOSC(address, values), over UDP."""

    def __init__(self, port: int):
        self.port, self.sent = port, []
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def sendOSC(self, address, values):  # noqa: N802 -- TouchDesigner's name
        builder = OscMessageBuilder(address)
        for v in values:
            builder.add_arg(v)
        self.sent.append((address, list(values)))
        return self.socket.sendto(builder.build().dgram, ("127.0.0.1", self.port))


class TableDat:
    def __init__(self):
        self.rows = []

    def clear(self):
        self.rows = []

    def appendRow(self, row):  # noqa: N802 -- TouchDesigner's name
        self.rows.append(list(row))


class Chop:
    def __init__(self, values):
        self.values = values

    def chans(self):
        return list(self.values)


def test_the_touchdesigner_script_sends_the_vector_and_keeps_the_feedback(served):
    port, proc, stats = served
    spec = importlib.util.spec_from_file_location("td_liveshtr", PATCHES / "touchdesigner" / "liveshtr.py")
    td = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(td)
    assert td.TELEMETRY_FIELDS == TELEMETRY_FIELDS  # its own copy: the script runs inside TouchDesigner
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as inbox:  # the OSC In DAT
        inbox.bind(("127.0.0.1", 0))
        inbox.settimeout(0.1)
        td.FEEDBACK_PORT = inbox.getsockname()[1]
        out, state, telemetry = OscOutDat(port), TableDat(), TableDat()
        ops = {td.OSC_OUT: out, "liveshtr_state": state, "liveshtr_telemetry": telemetry}
        td.op = ops.get

        def frames(seconds: float) -> None:  # TouchDesigner's frame loop: Execute DAT and OSC In DAT callbacks
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                td.keepalive()
                try:
                    for m in OscPacket(inbox.recv(65535)).messages:
                        td.on_osc(m.message.address, m.message.params)
                except TimeoutError:
                    pass

        frames(1.0)
        assert td.connected() and td.state["gain"] == [1.0] and td.telemetry["underruns"] == 0.0
        assert [a for a, _ in out.sent] == ["/liveshtr/subscribe"]  # once: feedback keeps flowing
        td.send_latent(Chop([0.5, -1, 2, 0, 0, 0, 0, 1]))
        td.send_latent(Chop([0.5, -1, 2, 0, 0, 0, 0, 1]))  # the same frame's other channels: not sent again
        td.send("/liveshtr/temperature", [3])
        frames(0.5)
        assert [a for a, _ in out.sent].count("/liveshtr/latent") == 1
        assert td.state["latent"] == pytest.approx([0.5, -1, 2, 0, 0, 0, 0, 1])
        assert td.state["temperature"] == [3.0]
        assert ["temperature", 3.0] in state.rows and ["underruns", 0.0] in telemetry.rows
        td.send("/liveshtr/latent/9", [1])  # a wrong dimension: the server says so, the script keeps it
        frames(0.5)
        assert td.errors and "latent/9" in td.errors[-1]
