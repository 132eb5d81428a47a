"""Dialogue attribution for ``import --cast``: quoted speech -> ``NAME:`` lines, precision first.

A paragraph's quotes (“...” or "...") are given to one speaker when the paragraph says who:

* a speech tag naming someone next to a quote: “...,” said Mara / Mara asked, “...” / Mara said
  quietly (confidence 0.95);
* a pronoun tag (“...,” he replied) in a two-person exchange: the one who did not speak last
  (0.85), only when the last quoted paragraph had a known speaker;
* an action beat naming its subject before the quote: Mara turned. “...” (0.8);
* no tag, inside an exchange that two named speakers have opened in consecutive quoted paragraphs:
  turns alternate (0.75, at most four untagged turns in a row).

Anything else stays narration: two different names tagged in one paragraph, ``said to Mara``
(an addressee), a narration paragraph or scene break between turns (it ends the exchange), a
name the book never tags as speaking. One speaker per paragraph is the convention novels follow.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .book import Book
from .writer import Line

SPEECH_VERBS = ("said says asked asks replied replies answered answers whispered whispers shouted shouts called "
                "cried muttered murmured added continued exclaimed snapped told repeated insisted admitted agreed "
                "demanded began yelled screamed breathed protested explained suggested warned offered observed "
                "remarked returned retorted stammered hissed growled pleaded inquired wondered laughed sighed "
                "corrected interrupted conceded announced declared shrugged nodded went").split()
VERB = r"(?:" + "|".join(SPEECH_VERBS) + r")"
NAME = (r"(?:(?:Captain|Doctor|Dr\.|Mr\.|Mrs\.|Miss|Old|Aunt|Uncle|Father|Mother|Sister|Brother)\s)?"
        r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?")
NOT_NAMES = frozenset("The He She It They I We You Then But And So There This That When While In On At After Before "
                      "His Her Its Their Our My No Yes If As What Who Why How Where Well Oh Ah Now Still Yet Even "
                      "Nobody Somebody Someone Everyone Nothing Perhaps Maybe Only Just Again Once".split())
QUOTE_RE = re.compile(r"“([^”]*)”|\"([^\"]*)\"")
ADV = r"(?:\s+\w+ly)?"
# tags after a quote (the narration right after its closing mark)
AFTER_NAMED = [re.compile(rf"^[\s,]*{VERB}{ADV}\s+(?P<name>{NAME})(?!\s*['’]s\b)(?![\w-])"),
               re.compile(rf"^[\s,]*(?P<name>{NAME}){ADV}\s+{VERB}\b")]
AFTER_PRONOUN = re.compile(rf"^[\s,]*(?P<p>he|she){ADV}\s+{VERB}\b", re.I)
# tags before a quote (the narration right before its opening mark)
BEFORE_NAMED = re.compile(rf"(?:^|[.!?]\s+)(?P<name>{NAME}){ADV}\s+{VERB}{ADV}(?:\s+\w+){{0,2}}\s*[,:]\s*$")
BEFORE_PRONOUN = re.compile(rf"(?:^|[.!?]\s+)(?P<p>[Hh]e|[Ss]he){ADV}\s+{VERB}{ADV}(?:\s+\w+){{0,2}}\s*[,:]\s*$")
BEAT_LEAD = r"(?:(?:At|In|On|By|From|Below|Above|Inside|Outside|Then|Later|Now|Again)\b[^.“\"]{0,30}?,?\s)?"
BEAT = re.compile(rf"^{BEAT_LEAD}(?P<name>{NAME})\s+(?!(?:and|or|but|nor|with|to|of)\b)[a-z]+\b[^“\"]*[.!?]\s*$")
PRONOUN_BEAT = re.compile(r"^(?:He|She)\s+[a-z]+(?:ed|ook|ew|ood|ent|ose|at|ung|ave|ame|an)\b[^“\"]*[.!?]\s*$")
ADDRESSED = re.compile(rf"\b{VERB}\s+(?:to|at)\s+(?P<name>{NAME})")


@dataclass
class _Turn:
    speaker: str | None
    named: bool          # the speaker came from a name (not a pronoun or alternation)


def qi_last_is_end(parts) -> bool:
    """The paragraph ends with its quote (no tag after it that could name someone else)."""
    return parts[-1][0] or not re.search(r"\w", parts[-1][1])


class Attributor:
    """Attributes every text paragraph of ``book`` at construction, in reading order; ``lines(para)``
    then gives the manuscript lines of a paragraph (narration for anything it did not see)."""

    def __init__(self, book: Book):
        self.counts: dict[str, int] = {}
        self.rows: list[tuple] = []           # (chapter, speaker, confidence, evidence, quote)
        self.by_para: dict[int, list[Line]] = {}
        self.chapter = ""
        self.reset()
        for ch in book.chapters:
            self.chapter = ch.title
            self.reset()
            for p in ch.paras:
                if p.kind != "text":
                    self.reset()
                    continue
                self.by_para[id(p)] = self.attribute(p.text)

    def lines(self, para) -> list[Line]:
        return self.by_para.get(id(para)) or [Line(para.text)]

    def reset(self) -> None:
        """A scene break, a heading or a new chapter ends every exchange."""
        self.exchange, self.last, self.untagged = [], None, 0

    # the work ---------------------------------------------------------------------------------
    def known(self, name: str) -> bool:
        return name.split()[-1] not in NOT_NAMES and name not in NOT_NAMES

    def attribute(self, text: str) -> list[Line]:
        parts = self.split(text)
        quotes = [i for i, (q, _) in enumerate(parts) if q]
        if not quotes:
            self.reset()        # a narration paragraph ends the exchange
            return [Line(text)]
        speaker, conf, why = self.decide(parts, quotes)
        if speaker is None:
            self.last = _Turn(None, False)
            self.exchange = []
            self.untagged = 0
            return [Line(text)]
        key = speaker.upper()
        if why.startswith("alternation"):
            self.untagged += 1
        else:
            self.untagged = 0
        self.last = _Turn(key, why.startswith("named"))
        if not self.exchange or self.exchange[-1] != key:
            self.exchange = (self.exchange + [key])[-2:]
        out = []
        for is_quote, chunk in parts:
            chunk = chunk.strip()
            if is_quote:
                self.counts[key] = self.counts.get(key, 0) + 1
                self.rows.append((self.chapter, key, conf, why, chunk))
                out.append(Line(chunk, key))
            else:
                chunk = chunk.lstrip(",;: ").strip()
                if chunk and re.search(r"\w", chunk):
                    out.append(Line(chunk))
        return out

    @staticmethod
    def split(text: str) -> list[tuple[bool, str]]:
        parts, pos = [], 0
        for m in QUOTE_RE.finditer(text):
            if m.start() > pos:
                parts.append((False, text[pos:m.start()]))
            inner = (m.group(1) if m.group(1) is not None else m.group(2)).strip()
            if inner:
                parts.append((True, inner))
            pos = m.end()
        if pos < len(text):
            parts.append((False, text[pos:]))
        return parts

    def decide(self, parts, quotes) -> tuple[str | None, float, str]:
        named: set[str] = set()
        pronoun = False
        for qi in quotes:
            after = parts[qi + 1][1] if qi + 1 < len(parts) and not parts[qi + 1][0] else ""
            before = parts[qi - 1][1] if qi > 0 and not parts[qi - 1][0] else ""
            for rx in AFTER_NAMED:
                m = rx.match(after)
                if m and self.known(m.group("name")):
                    named.add(m.group("name"))
            m = BEFORE_NAMED.search(before)
            if m and self.known(m.group("name")):
                named.add(m.group("name"))
            if AFTER_PRONOUN.match(after) or BEFORE_PRONOUN.search(before):
                pronoun = True
        addressed = {m.group("name") for _, chunk in parts for m in ADDRESSED.finditer(chunk)}
        named -= addressed
        if len(named) > 1:
            return None, 0.0, "conflicting tags"
        if named:
            return named.pop(), 0.95, "named speech tag"
        if pronoun:
            other = self.other()
            return (other, 0.85, "pronoun tag in a two-person exchange") if other else (None, 0.0, "")
        first = parts[0]
        if not first[0]:
            m = BEAT.match(first[1].strip())
            if m and self.known(m.group("name")) and m.group("name") not in addressed:
                return m.group("name"), 0.8, "named action beat before the quote"
            if PRONOUN_BEAT.match(first[1].strip()) and len(quotes) == 1 and qi_last_is_end(parts):
                other = self.other(untagged=True)
                if other:
                    return other, 0.75, "pronoun action beat in a two-person exchange"
        if all(q or not re.search(r"\w", c) for q, c in parts):
            other = self.other(untagged=True)
            if other:
                return other, 0.75, "alternation in a two-person exchange"
        return None, 0.0, ""

    def other(self, untagged: bool = False) -> str | None:
        """The other person of the current two-person exchange, if the last turn had a speaker."""
        if len(self.exchange) != 2 or self.last is None or self.last.speaker is None:
            return None
        if untagged and self.untagged >= 4:
            return None
        a, b = self.exchange
        return a if self.last.speaker == b else b if self.last.speaker == a else None


__all__ = ["Attributor"]
