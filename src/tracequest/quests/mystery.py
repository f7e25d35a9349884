"""The mystery (quest 03): the learner's seed, their answers, the lab that runs it.

``tracequest mystery new`` draws a seed and keeps it in ``<lab home>/mystery.json``.
A mystery has two questions: which operation holds the time of a /dispatch
(``tracequest answer slow-span <service> <operation>``), and where the
assistant's trouble is (``tracequest answer assistant <service> <operation>``);
both answers go to ``<lab home>/answers.json``. Neither file names a culprit: one
holds only the seed, the other only what the learner typed. Which culprits a
seed picks is decided by the services themselves (``services/common/mystery.py``),
so the lab, the check and the learner's own investigation always agree.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path

from services.common.mystery import ENV, culprit_for
from tracequest.host.ports import Ports
from tracequest.lab.lab import Lab
from tracequest.lab.settings import LabSettings

MYSTERY_FILE = "mystery.json"
ANSWERS_FILE = "answers.json"
QUESTION = "slow-span"  # the /dispatch traces' slow span
ASSISTANT_QUESTION = "assistant"  # what troubles the assistant
QUESTIONS = (QUESTION, ASSISTANT_QUESTION)
SEEDS = range(1, 10_000)


# --- the seed -----------------------------------------------------------------

def load_seed(home: Path) -> int | None:
    """The learner's mystery seed, or None if they have not drawn one."""
    data = _read(Path(home) / MYSTERY_FILE)
    seed = data.get("seed")
    return seed if isinstance(seed, int) else None


def save_seed(home: Path, seed: int) -> None:
    _write(Path(home) / MYSTERY_FILE, {"seed": seed})


def draw_seed(previous: int | None = None, rng: random.Random | None = None) -> int:
    """A random seed; after an earlier mystery, one whose culprit is a different one."""
    rng = rng or random.Random()
    while True:
        seed = rng.choice(SEEDS)
        if previous is None or culprit_for(seed) != culprit_for(previous):
            return seed


# --- the answer -----------------------------------------------------------------

def load_answer(home: Path, question: str = QUESTION) -> dict | None:
    """The learner's answer to a question ({"service", "operation"}), or None."""
    answer = _read(Path(home) / ANSWERS_FILE).get(question)
    if isinstance(answer, dict) and answer.get("service") and answer.get("operation"):
        return answer
    return None


def save_answer(home: Path, service: str, operation: str, question: str = QUESTION) -> None:
    path = Path(home) / ANSWERS_FILE
    answers = _read(path)
    answers[question] = {"service": service, "operation": operation, "answered_at": _now()}
    _write(path, answers)


def clear_answer(home: Path) -> bool:
    """Forget the answers to the mystery (a new mystery needs new ones); True if there was one."""
    path = Path(home) / ANSWERS_FILE
    answers = _read(path)
    cleared = [answers.pop(question) for question in QUESTIONS if question in answers]
    if not cleared:
        return False
    _write(path, answers)
    return True


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# --- the lab, with the mystery on ---------------------------------------------

def mystery_env(seed: int) -> dict:
    """What the services' environment needs for this mystery."""
    return {ENV: str(seed)}


def start_lab(home: Path, seed: int, log=print, ports: Ports | None = None) -> Lab:
    """Start the lab with this mystery on; a lab already running is restarted as it was.

    Restarting keeps its ports (unless ``ports`` moves them), backend and
    settings, adding only the mystery, so every URL the learner has open keeps working.
    """
    running = Lab.from_state(home)
    if running is None:
        log(f"Starting the lab with mystery #{seed} on...")
        lab = Lab(LabSettings(ports=ports or Ports(), service_env=mystery_env(seed)), home)
    else:
        log(f"Restarting the lab with mystery #{seed} on (same backend"
            f"{'' if ports else ' and ports'})...")
        running.down(log=log)
        env = {**running.service_env, **mystery_env(seed)}
        lab = Lab(replace(running.settings, service_env=env, ports=ports or running.ports), home)
    lab.up(log=log)
    log("The lab is up. Traces from before this start do not show the mystery; "
        "trace lists show the newest first.")
    return lab


def lab_runs(home: Path, seed: int) -> bool | None:
    """True if the lab runs this mystery, False if it runs without it, None if it is not up."""
    lab = Lab.from_state(home)
    if lab is None or not lab.is_up():
        return None
    return lab.service_env.get(ENV) == str(seed)
