"""liveshtr from TouchDesigner: put this file in a Text DAT named `liveshtr` (README.md, step 3).

The other DATs call it as `mod.liveshtr`:
- a CHOP Execute DAT on your latent CHOP: `send_latent(channel.owner)` sends the whole vector, once per frame
  and only when it changed;
- an OSC In DAT on FEEDBACK_PORT: `on_osc(address, args)` keeps the server's state and telemetry, and
  fills the Table DATs `liveshtr_state` and `liveshtr_telemetry` when they exist;
- an Execute DAT: `keepalive()` every frame subscribes to the feedback, and again every 2 s while none arrives
  (the server started after the project, or was restarted).

Plain Python: it touches TouchDesigner only through `op()`, `sendOSC` and the two tables, so it runs (and is
tested) outside TouchDesigner too.
"""

import time

OSC_OUT = "oscout_liveshtr"  # the OSC Out DAT: Network Address 127.0.0.1, Network Port 9000 (serve's --osc-port)
FEEDBACK_PORT = 9004  # the OSC In DAT's port; Max uses 9002 and Pure Data 9003, so all three can run at once
RESUBSCRIBE_S = 2.0
PREFIX = "/liveshtr/"
TELEMETRY_FIELDS = (
    "played_s",
    "fill_ms",
    "underruns",
    "device_xruns",
    "resets",
    "step_us",
    "load",
    "peak_db",
    "rms_db",
    "errors",
)

state = {}  # control name -> list of values, as the server last reported them
telemetry = {}  # field -> value
errors = []  # the server's latest error replies: "address: problem"
_sent = None
_last_feedback = None
_last_subscribe = None


def _op(name):
    return op(name)  # noqa: F821 -- TouchDesigner provides op(); the tests provide it too


def send(address, values):
    """One OSC message through the OSC Out DAT; numbers go as floats (TouchDesigner sends Python ints as i)."""
    _op(OSC_OUT).sendOSC(address, [float(v) for v in values])


def send_latent(chop):
    """Send every channel of `chop`, in order, as /liveshtr/latent, unless it is what was sent last."""
    global _sent
    values = tuple(float(c) for c in chop.chans())
    if values and values != _sent:
        _sent = values
        send(PREFIX + "latent", values)


def subscribe():
    global _last_subscribe
    _last_subscribe = time.monotonic()
    _op(OSC_OUT).sendOSC(PREFIX + "subscribe", [int(FEEDBACK_PORT)])


def keepalive():
    """Call every frame: subscribes at once, then every RESUBSCRIBE_S while no feedback arrives."""
    now = time.monotonic()
    silent = _last_feedback is None or now - _last_feedback > RESUBSCRIBE_S
    if silent and (_last_subscribe is None or now - _last_subscribe > RESUBSCRIBE_S):
        subscribe()


def connected():
    return _last_feedback is not None and time.monotonic() - _last_feedback <= RESUBSCRIBE_S


def on_osc(address, args):
    """Everything the server sends back: state, telemetry, errors."""
    global _last_feedback, _sent
    if not address.startswith(PREFIX):
        return
    name = address[len(PREFIX) :]
    args = list(args)
    if name == "telemetry":
        _last_feedback = time.monotonic()
        telemetry.update(zip(TELEMETRY_FIELDS, args, strict=False))  # a newer server may add fields
        _table("liveshtr_telemetry", [[f, telemetry[f]] for f in TELEMETRY_FIELDS if f in telemetry])
    elif name in ("error", "clamped"):
        errors[:] = (errors + [f"{name} " + " ".join(str(a) for a in args)])[-10:]
        print(f"liveshtr {name}:", *args)
    elif name in ("spectrum", "subscribed", "unsubscribed", "param"):
        return
    else:
        state[name] = args
        if name == "latent":
            _sent = tuple(float(a) for a in args)  # the server has it: no need to send it back
        _table("liveshtr_state", [[n, *v] for n, v in state.items()])


def _table(name, rows):
    table = _op(name)
    if table is None:
        return
    table.clear()
    for row in rows:
        table.appendRow(row)
