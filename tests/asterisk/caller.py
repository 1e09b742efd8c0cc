"""A caller on the real Asterisk: a call originated over AMI into a Local channel whose
second half runs the dialplan under test (``Local/613@from-provider``) while the first half
is the caller, in the tests' ``xvb-test-caller`` context.

The caller's half records what it hears (``MixMonitor`` with the read side apart), presses
keys (AMI ``PlayDTMF`` on its half, which Local hands to the other half as the caller's
DTMF) and speaks (a ``Playback`` on its half, reached by AMI ``Redirect``).  Keys are pressed
when xvbd is listening for them: the harness waits for res_agi's ``AGIExecStart`` event of
the command first, as a person waits for the prompt.
"""

from __future__ import annotations

import re
import time
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path

from tests.asterisk.manager import Event, Manager

CALLER_CONTEXT = """
; The tests' caller: the first half of a Local channel originated over AMI.
[xvb-test-caller]
exten => s,1,MixMonitor(${XVBT_DIR}/${XVBT_ID}-both.wav,r(${XVBT_DIR}/${XVBT_ID}-heard.wav))
 same => n(wait),Wait(3600)
 same => n,Hangup()
exten => play,1,Playback(${XVBT_PLAY})
 same => n,UserEvent(XvbtSaid,Id: ${XVBT_ID})
 same => n,Goto(s,wait)
"""

PHONES_CONTEXT = """
; The phones xvbd dials (FollowMe, queues, callblast …), reached through the gateway.  What
; each does is the global XVBT_PHONE_<number>: answer, busy, fail, person (answers, says
; a word, then listens: a phone line carries silence, and AMD needs it), machine (answers
; with a long greeting), or nothing (rings forever).
[xvbt-phones]
exten => _[0-9*#+]!,1,Set(XVBT_DO=${XVBT_PHONE_${EXTEN}})
 same => n,UserEvent(XvbtPhoneRang,Phone: ${EXTEN},AC: ${PJSIP_HEADER(read,XVB-AC)},Do: ${XVBT_DO})
 same => n,GotoIf($["${XVBT_DO}" = "busy"]?busy)
 same => n,GotoIf($["${XVBT_DO}" = "fail"]?fail)
 same => n,GotoIf($["${XVBT_DO}" = "answer" | "${XVBT_DO}" = "person" | "${XVBT_DO}" = "machine"]?up)
 same => n,Ringing()
 same => n,Wait(600)
 same => n,Hangup()
 same => n(busy),Busy(10)
 same => n(fail),Congestion(10)
 same => n(up),Answer()
 same => n,MixMonitor(${XVBT_PHONES}/phone-${EXTEN}-${UNIQUEID}.wav,r(${XVBT_PHONES}/phone-${EXTEN}-${UNIQUEID}-heard.wav))
 same => n,UserEvent(XvbtPhoneUp,Phone: ${EXTEN})
 same => n,GotoIf($["${XVBT_DO}" = "person"]?person)
 same => n,GotoIf($["${XVBT_DO}" = "machine"]?machine)
 same => n,Wait(600)
 same => n,Hangup()
 same => n(person),Playback(silence/1&vm-goodbye)
 same => n,Playback(silence/10&silence/10&silence/10&silence/10&silence/10&silence/10)
 same => n,Wait(600)
 same => n,Hangup()
 same => n(machine),Playback(vm-intro&vm-intro)
 same => n,Wait(600)
 same => n,Hangup()
"""

_COMMAND = re.compile(r"^\S+ (.*)$")


@dataclass(frozen=True)
class AGIStep:
    """One AGI command as res_agi reported it, with its result line."""

    command: str
    result: str
    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Call:
    """One call placed into the dialplan, and the caller on its first half."""

    def __init__(self, ami: Manager, number: str, directory: Path, *,
                 context: str = "from-provider", caller_id: str = "79161234567",
                 caller_name: str = "Test Caller", variables: dict[str, str] | None = None,
                 timeout: float = 20.0, log: Path | None = None) -> None:
        self.ami = ami
        self.log = log
        self.id = uuid.uuid4().hex[:12]
        self.caller_uid = f"xvbt-{self.id}-1"
        self.line_uid = f"xvbt-{self.id}-2"
        self.directory = directory
        self.start_index = ami.seen()
        fields = {f"XVBT_DIR={directory}", f"XVBT_ID={self.id}"}
        for key, value in (variables or {}).items():
            fields.add(f"{key}={value}")
        reply = ami.action("Originate", Channel=f"Local/{number}@{context}",
                           Context="xvb-test-caller", Exten="s", Priority="1",
                           CallerID=f'"{caller_name}" <{caller_id}>' if caller_name
                           else caller_id,
                           Timeout=str(int(timeout * 1000)), Async="true",
                           ChannelId=self.caller_uid, OtherChannelId=self.line_uid,
                           Variable=sorted(fields))
        if reply.get("Response") != "Success":
            raise AssertionError(f"Originate refused: {reply}")
        self.line_channel = ""
        self.caller_channel = ""
        self._cursor = self.start_index

    # ------------------------------------------------------------------ channels

    def _mine(self, event: Event) -> bool:
        return event.get("Uniqueid") in (self.caller_uid, self.line_uid)

    def line(self, timeout: float = 10.0) -> str:
        """The name of the half that runs the dialplan (``Local/613@from-provider-…;2``)."""
        if not self.line_channel:
            _, event = self.ami.wait_for(
                lambda e: e.get("Uniqueid") == self.line_uid and "Channel" in e,
                timeout, after=self.start_index, what="the line's channel")
            self.line_channel = event["Channel"]
            self.caller_channel = self.line_channel[:-1] + "1"
        return self.line_channel

    # ------------------------------------------------------------------ AGI

    def wait_command(self, prefix: str, timeout: float = 15.0) -> Event:
        """Wait until xvbd sends an AGI command starting with ``prefix`` (from where the
        last wait left off); return its ``AGIExecStart`` event."""
        def match(e: Event) -> bool:
            return (e.get("Event") == "AGIExecStart" and e.get("Uniqueid") == self.line_uid
                    and e.get("Command", "").upper().startswith(prefix.upper()))
        index, event = self.ami.wait_for(match, timeout, after=self._cursor,
                                         what=f"AGIExecStart {prefix!r}")
        self._cursor = index + 1
        return event

    def steps(self) -> list[AGIStep]:
        """Every AGI command of this call so far, with Asterisk's result line."""
        starts: dict[str, tuple[str, float]] = {}
        out = []
        for event in self.ami.events[self.start_index:]:
            if event.get("Uniqueid") != self.line_uid:
                continue
            name = event.get("Event")
            if name == "AGIExecStart":
                starts[event["CommandId"]] = (event["Command"], float(event["_seen"]))
            elif name == "AGIExecEnd" and event.get("CommandId") in starts:
                command, started = starts.pop(event["CommandId"])
                out.append(AGIStep(command, event.get("Result", ""), started,
                                   float(event["_seen"])))
        return out

    def commands(self) -> list[str]:
        return [step.command for step in self.steps()]

    def wire(self) -> list[tuple[str, str]]:
        """(command, Asterisk's reply line) of every AGI command of this call, as Asterisk
        logged them (``agi set debug on``): the exact bytes of each answer."""
        if self.log is None:
            return []
        self.line()
        tag = f"<{self.line_channel}>AGI "
        out: list[tuple[str, str]] = []
        for line in self.log.read_text(errors="replace").splitlines():
            at = line.find(tag)
            if at < 0:
                continue
            text = line[at + len(tag):]
            if text.startswith("Rx << "):
                out.append((text[6:], ""))
            elif text.startswith("Tx >> ") and out and not out[-1][1]:
                if not text[6:].startswith("agi_"):
                    out[-1] = (out[-1][0], text[6:])
        return out

    def reply_to(self, prefix: str) -> str:
        """Asterisk's reply to the first command starting with ``prefix``."""
        for command, reply in self.wire():
            if command.upper().startswith(prefix.upper()):
                return reply
        raise AssertionError(f"no AGI command {prefix!r} in this call:\n"
                             + "\n".join(f"{c} -> {r}" for c, r in self.wire()))

    # ------------------------------------------------------------------ the caller

    def press(self, keys: str, *, gap: float = 0.25) -> None:
        """Press ``keys`` one after another, as a person does."""
        self.line()
        for key in keys:
            reply = self.ami.action("PlayDTMF", Channel=self.caller_channel, Digit=key,
                                    Duration="120")
            if reply.get("Response") != "Success":
                raise AssertionError(f"PlayDTMF {key!r}: {reply}")
            time.sleep(gap)

    def answer_prompt(self, command: str, keys: str, timeout: float = 15.0) -> None:
        """When xvbd next asks with ``command`` (``GET DATA``, ``STREAM FILE`` …), press."""
        self.wait_command(command, timeout)
        time.sleep(0.3)  # the prompt has begun to play
        self.press(keys)

    def say(self, sound: str, timeout: float = 30.0) -> None:
        """The caller speaks: ``sound`` (an Asterisk sound file) played into the line."""
        self.line()
        self.ami.action("Setvar", Channel=self.caller_channel, Variable="XVBT_PLAY",
                        Value=sound)
        mark = self.ami.seen()
        reply = self.ami.action("Redirect", Channel=self.caller_channel,
                                Context="xvb-test-caller", Exten="play", Priority="1")
        if reply.get("Response") != "Success":
            raise AssertionError(f"Redirect to play {sound}: {reply}")
        self.ami.wait_for(lambda e: e.get("Event") == "UserEvent"
                          and e.get("UserEvent") == "XvbtSaid" and e.get("Id") == self.id,
                          timeout, after=mark, what=f"the caller said {sound}")

    def hang_up(self) -> None:
        self.line()
        self.ami.action("Hangup", Channel=self.caller_channel)

    def wait_gone(self, timeout: float = 30.0) -> Event:
        """Wait until the dialplan's half has hung up; its Hangup event."""
        _, event = self.ami.wait_for(
            lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == self.line_uid,
            timeout, after=self.start_index, what="the line's Hangup")
        return event

    def variable(self, name: str) -> str:
        """A channel variable of the dialplan's half as the last VarSet event set it."""
        value = ""
        for event in self.ami.events[self.start_index:]:
            if (event.get("Event") == "VarSet" and event.get("Uniqueid") == self.line_uid
                    and event.get("Variable") == name):
                value = event.get("Value", "")
        return value

    # ------------------------------------------------------------------ what was heard

    def heard(self) -> Path:
        return self.directory / f"{self.id}-heard.wav"

    def heard_seconds(self) -> float:
        """How long the caller's recording of what they heard lasts (the MixMonitor file
        is complete once the caller's half has hung up)."""
        return wav_seconds(self.heard())


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


def loud_seconds(path: Path, threshold: int = 500) -> float:
    """Seconds of ``path`` (16-bit WAV) whose 20 ms frames are louder than ``threshold``:
    sound, not silence."""
    import array

    with wave.open(str(path)) as audio:
        rate = audio.getframerate()
        samples = array.array("h", audio.readframes(audio.getnframes()))
    window = rate // 50
    loud = 0
    for start in range(0, len(samples), window):
        chunk = samples[start:start + window]
        if chunk and max(abs(s) for s in chunk) > threshold:
            loud += 1
    return loud / 50
