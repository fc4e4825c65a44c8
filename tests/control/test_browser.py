"""The browser page in a real Chromium (system package, driven by Playwright): it plays the engine, and it follows
changes made elsewhere (another page, OSC) within a frame or two."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.helpers import ask, message, midi_out, osc, osc_port, start_serve, stop_serve, wait_started, web_url

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is missing (Debian package chromium; `make test` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def served(tmp_path):
    stats = tmp_path / "stats.json"
    proc = start_serve("--sink", "null", "--status-every", "0", "--stats-json", str(stats), "--token", "page-token-1")
    try:
        yield wait_started(proc), proc, stats
    finally:
        stop_serve(proc)


def open_page(browser, url: str):
    # The page's CSP forbids eval; Playwright's wait_for_function needs it, so the test context bypasses the CSP.
    page = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True).new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_function("document.querySelector('#status').textContent.includes('connected')")
    page.wait_for_function("window.liveshtr && window.liveshtr.telemetryCount > 2")
    return page, errors


def get(lines: dict, name: str):
    return dict(ask(osc_port(lines), message("/liveshtr/get", name)))[f"/liveshtr/{name}"]


def test_the_page_plays_the_engine_and_every_surface_sees_it(browser, served):
    lines, proc, stats = served
    url = web_url(lines)
    one, errors_one = open_page(browser, url)
    two, errors_two = open_page(browser, url)

    # A slider on page one: the engine changes, page two follows.
    slider = one.locator('input[type=range][data-param="temperature"]')
    slider.fill("2.5")
    deadline = time.monotonic() + 5
    while get(lines, "temperature") != [pytest.approx(2.5)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(lines, "temperature") == [pytest.approx(2.5)]
    two.wait_for_function(
        "document.querySelector('input[type=range][data-param=\"temperature\"]').valueAsNumber === 2.5", timeout=2000
    )

    # The XY pad on page one moves two latent dimensions; a drag to the top-right corner is the range's maximum.
    one.select_option("#xy-x", "0")
    one.select_option("#xy-y", "1")
    pad = one.locator("#xy").bounding_box()
    one.mouse.move(pad["x"] + pad["width"] / 2, pad["y"] + pad["height"] / 2)
    one.mouse.down()
    one.mouse.move(pad["x"] + pad["width"] - 1, pad["y"] + 1, steps=8)
    one.mouse.up()
    time.sleep(0.3)
    latent = get(lines, "latent")
    assert latent[0] > 3.5 and latent[1] > 3.5, latent  # right is +x, up is +y
    two.wait_for_function("window.liveshtr.state.latent[0] > 3.5 && window.liveshtr.state.latent[1] > 3.5")

    # OSC moves a latent dimension: both pages' sliders follow within a frame or two.
    started = time.monotonic()
    osc(osc_port(lines), "/liveshtr/latent/5", -2.0)
    for page in (one, two):
        page.wait_for_function(
            'document.querySelector(\'input[type=range][data-param="latent"][data-index="5"]\').valueAsNumber === -2',
            timeout=2000,
        )
    assert time.monotonic() - started < 1.0

    # Buttons: freeze on and off, reset counts, panic silences (gain 0) and the meters fall.
    one.locator('[data-param="freeze"]').click()
    time.sleep(0.2)
    assert get(lines, "freeze") == [1.0]
    one.locator('[data-param="freeze"]').click()
    one.locator('[data-action="reset"]').click()
    time.sleep(0.2)
    assert get(lines, "freeze") == [0.0] and get(lines, "reset") == [1.0]

    # The meters and counters move with the sound; the spectrogram draws.
    peaks = set()
    for _ in range(10):
        peaks.add(one.locator("#peak-db").text_content())
        time.sleep(0.1)
    assert len(peaks) > 2  # live meters
    assert max(float(p) for p in peaks) > -60  # music has rests: some reading within the second shows sound
    drawn = one.evaluate(
        """() => { const c = document.querySelector('#spectrogram');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let lit = 0; for (let i = 0; i < d.length; i += 4) lit += (d[i] + d[i+1] + d[i+2]) > 60;
                   return lit / (d.length / 4); }"""
    )
    assert drawn > 0.05  # a live spectrogram, not a blank canvas
    one.locator('[data-action="panic"]').click()
    two.wait_for_function("window.liveshtr.state.gain === 0", timeout=2000)
    two.wait_for_function("parseFloat(document.querySelector('#peak-db').textContent) < -60", timeout=3000)

    # Training beside the set: nothing trains yet (no bar); a song that is not there is refused in one line.
    assert one.locator("#learn-progress").is_hidden() and one.locator("#learn-start").is_visible()
    one.locator("#learn-song").fill("/no/such/song.wav")
    one.locator("#learn-start").click()
    one.wait_for_function("document.querySelector('#toast').textContent.includes('no such file')", timeout=3000)

    assert errors_one == [] and errors_two == []
    one.close()
    two.close()
    assert stop_serve(proc) == 0
    summary = json.loads(stats.read_text())
    assert summary["web"]["errors"] == 1 and summary["non_finite_blocks"] == 0  # the song that is not there
    assert summary["learn"] is None


def test_the_page_without_its_token_is_refused(browser, served):
    lines, proc, stats = served
    page = browser.new_page()
    response = page.goto(web_url(lines).split("?")[0])
    assert response.status == 403
    page.close()


def test_the_page_saves_recalls_and_deletes_scenes_and_learns_midi(browser, jack, tmp_path):
    scenes = tmp_path / "scenes.json"
    proc = start_serve("--sink", "null", "--scenes", str(scenes), "--midi", "--midi-api", "jack", env=jack)
    out = None
    try:
        lines = wait_started(proc)
        port = osc_port(lines)
        page, errors = open_page(browser, web_url(lines))
        ask(port, message("/liveshtr/temperature", 2.0))
        page.fill("#scene-name", "warm")
        page.click("#scene-save")
        page.wait_for_selector('button.scene[data-scene="warm"]')
        assert json.loads(scenes.read_text())["scenes"]["warm"]["temperature"] == 2.0
        ask(port, message("/liveshtr/temperature", 0.5))
        page.fill("#scene-seconds", "0")
        page.click('button.scene[data-scene="warm"]')
        deadline = time.monotonic() + 5
        while get(lines, "temperature") != [2.0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(lines, "temperature") == [2.0]
        # MIDI learn from the page: the temperature fader's learn button, then a controller moved
        page.click('button.learn[data-learn="temperature"]')
        page.wait_for_selector('button.learn.on[data-learn="temperature"]')
        out = midi_out(jack)
        # A controller moved sends on: until the page says it learned, as a hand on a fader would (one message
        # can miss JACK's first cycle with the new connection on a busy machine: seen once in a fresh-clone run).
        deadline = time.monotonic() + 15
        while page.locator("button.learn.on").count() and time.monotonic() < deadline:
            out.send_message([0xB0, 80, 0])
            time.sleep(0.5)
        page.wait_for_selector("button.learn.on", state="detached", timeout=2000)
        assert ("/liveshtr/midi/cc", [80, "temperature"]) in ask(port, message("/liveshtr/midi/map"))
        assert get(lines, "temperature") == [0.0]
        assert json.loads(scenes.read_text())["midi"]["cc"]["80"] == "temperature"  # kept with the scenes
        # delete: the first press arms it, the second deletes
        page.click('button.scene-delete[data-delete-scene="warm"]')
        assert json.loads(scenes.read_text())["scenes"] == {"warm": json.loads(scenes.read_text())["scenes"]["warm"]}
        page.click('button.scene-delete[data-delete-scene="warm"]')
        page.wait_for_selector('button.scene[data-scene="warm"]', state="detached")
        assert json.loads(scenes.read_text())["scenes"] == {}
        assert errors == []
    finally:
        if out is not None:
            out.close_port()
            out.delete()  # the JACK client too
        assert stop_serve(proc) == 0


def test_the_pages_set_buttons_switch_the_model_and_its_faders_follow(browser, other_model):
    from liveshtr.commands.common import DEMO_MODEL

    proc = start_serve(str(DEMO_MODEL), str(other_model), "--sink", "null", "--status-every", "0")
    try:
        lines = wait_started(proc)
        page, errors = open_page(browser, web_url(lines))
        assert page.locator('input[type=range][data-param="latent"]').count() == 8
        assert page.locator("button.model-button.playing").text_content() == "0 demo"
        page.fill("#model-seconds", "0.5")
        page.click('button.model-button[data-model="1"]')
        page.wait_for_selector('button.model-button.playing[data-model="1"]')
        page.wait_for_function("document.querySelectorAll('input[type=range][data-param=\"latent\"]').length === 4")
        assert ("/liveshtr/model", [1, "groove-16k", 1]) in ask(osc_port(lines), message("/liveshtr/models"))
        # Its faders move the new model's table.
        page.locator('input[type=range][data-param="latent"]').nth(3).fill("2")
        deadline = time.monotonic() + 5
        while get(lines, "latent")[3] != 2.0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(lines, "latent") == [0.0, 0.0, 0.0, 2.0]
        assert errors == []
    finally:
        assert stop_serve(proc) == 0
