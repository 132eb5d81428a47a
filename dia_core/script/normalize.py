"""Text normalization for speech: written forms Dia would misread -> the words a narrator says.

A planning step: the planner measures and segments the spoken text, so budgets stay true. English
only for now (the project's ``language`` starts with ``en``; ``en-GB`` reads 3/5/2024 as 3 May);
``normalize: false`` in project.yaml turns it off. The lexicon always wins: a change that touches a
lexicon match is not made. Numbers are spelled by num2words; the tables here only hold what no
library decides (which abbreviation a ``Dr.`` is, how a currency is named).

Categories, in the order they are tried at each position: URLs, e-mail addresses, money, dates,
times, percentages, ranges, decades, ordinals, fractions, numbers with units, decimals, cardinals
(years by context), Roman numerals (after Chapter/Part/...; regnal names; every numeral in a
heading), abbreviations (Dr. Doctor/Drive, St. Saint/Street by their neighbours; Mr., etc., e.g.,
No. ...), and symbols (& + = # @ § ° × ~).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from num2words import num2words


@dataclass(frozen=True)
class Change:
    start: int
    end: int
    written: str
    spoken: str


def _card(n: int) -> str:
    return num2words(n, lang="en").replace(",", "")   # "one thousand, two hundred": no pause wanted


def _ord(n: int) -> str:
    return num2words(n, lang="en", to="ordinal")


def _year(n: int) -> str:
    return num2words(n, lang="en", to="year")


def _digits(s: str) -> str:
    return " ".join(_card(int(c)) for c in s)


def _number(s: str) -> str:
    """'1,234' -> cardinal, '3.14' -> 'three point one four', '007' -> digits, '-5' -> 'minus five'."""
    s = s.replace(",", "")
    neg = s.startswith(("-", "−"))
    s = s.lstrip("-−")
    whole, _, frac = s.partition(".")
    if len(whole) > 1 and whole.startswith("0"):
        out = _digits(whole)
    elif len(whole) > 15:
        out = _digits(whole)
    else:
        out = _card(int(whole or "0"))
    if frac:
        out += " point " + _digits(frac)
    return ("minus " if neg else "") + out


NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
MONTH_ABBR = {m[:3]: m for m in MONTHS} | {"sept": "september"}
MONTH_RE = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?" \
           r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
            "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "", "")}
SCALES = r"thousand|million|billion|trillion"
UNITS = {"km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
         "kg": ("kilogram", "kilograms"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
         "oz": ("ounce", "ounces"), "ft": ("foot", "feet"), "mi": ("mile", "miles"),
         "mph": ("mile per hour", "miles per hour"),
         "km/h": ("kilometer per hour", "kilometers per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
         "°C": ("degree Celsius", "degrees Celsius"), "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
         "°": ("degree", "degrees"), "kb": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
         "GB": ("gigabyte", "gigabytes"), "ml": ("milliliter", "milliliters"), "mg": ("milligram", "milligrams")}
UNIT_RE = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
# Abbreviations before a name (titles) and after one (street types); the rest anywhere.
TITLES = {"Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Dr": "Doctor", "Prof": "Professor", "St": "Saint",
          "Gen": "General", "Capt": "Captain", "Lt": "Lieutenant", "Sgt": "Sergeant", "Col": "Colonel",
          "Rev": "Reverend", "Gov": "Governor", "Sen": "Senator", "Fr": "Father", "Mt": "Mount", "Ft": "Fort",
          "Hon": "Honorable", "Supt": "Superintendent", "Insp": "Inspector"}
STREETS = {"St": "Street", "Dr": "Drive", "Ave": "Avenue", "Rd": "Road", "Blvd": "Boulevard", "Ln": "Lane",
           "Ct": "Court", "Sq": "Square", "Pl": "Place", "Hwy": "Highway"}
OTHER_ABBR = {"etc.": "et cetera", "e.g.": "for example", "i.e.": "that is", "vs.": "versus",
              "approx.": "approximately",
              "Jr.": "Junior", "Sr.": "Senior", "Ltd.": "Limited", "Inc.": "Incorporated", "Fig.": "Figure",
              "Vol.": "Volume", "Ch.": "Chapter", "Dept.": "Department", "Univ.": "University"}
ABBR_CAN_END = frozenset(("etc.", "Jr.", "Sr.", "Ltd.", "Inc."))   # their period may also end the sentence
KEYWORD_ROMAN = r"chapter|part|book|volume|vol\.|act|scene|section|appendix|canto|psalm|war|phase|stage|article|" \
                r"episode|season|series|class|type|level|lesson"
REGNAL = ("Henry Edward Elizabeth George William Charles James Richard Louis Mary Anne John Peter Catherine Philip "
          "Frederick Ferdinand Alexander Nicholas Ivan Victor Emmanuel Leo Pius Gregory Benedict Clement Innocent "
          "Boniface Urban Paul Alfonso Carlos Juan Gustav Olaf Harald Christian Haakon Ludwig Otto Rudolf Wilhelm "
          "Constantine Ptolemy Ramesses Rameses Amenhotep Thutmose Darius Xerxes Napoleon Stephen Matilda Robert "
          "David Malcolm Kenneth Alexios Basil Leopold Francis Joseph Maximilian Sigismund Casimir Stanislaus "
          "Sancho Pedro Manuel Afonso Jaime Felipe Isabella Victoria Margaret Harold Edmund Canute Cnut Rupert").split()
ROMAN_RE = r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
SYMBOLS = {"&": "and", "+": "plus", "=": "equals", "@": "at", "§": "section", "×": "times", "©": "copyright",
           "®": "registered", "™": "trademark", "½": "one half", "¼": "one quarter", "¾": "three quarters",
           "⅓": "one third", "⅔": "two thirds"}
FRACTIONS = {(1, 2): "one half", (1, 3): "one third", (2, 3): "two thirds", (1, 4): "one quarter",
             (3, 4): "three quarters"}
YEAR_CUES = {"in", "since", "of", "by", "from", "until", "till", "to", "circa", "c.", "year", "summer", "winter",
             "spring", "autumn", "fall", "early", "late", "mid", "around", "before", "after", "during", "between",
             "and", "ad", "bc", "born", "died", "the"}


def _roman_value(s: str) -> int | None:
    if not s or not re.fullmatch(ROMAN_RE, s):
        return None
    vals = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
    total = 0
    for a, b in zip(s, s[1:] + " "):
        v = vals[a]
        total += -v if b != " " and vals[b] > v else v
    return total


# Alternatives that need a word (URLs, e-mail, Roman numerals, abbreviations) and those that need a
# digit or a symbol, as two patterns: each text is searched only by those its cheap triggers allow.
_WORD_ALTS = [
    r"(?P<url>\b(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)\]'’”])",
    r"(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b)",
    rf"(?P<kwroman>\b(?P<kw>(?i:{KEYWORD_ROMAN}))\s(?P<kr>[IVXLCDM]+)\b)",
    rf"(?P<regnal>\b(?P<rn>{'|'.join(REGNAL)})\s(?P<rr>[IVXLCDM]+)\b)",
    r"(?P<abbr2>\b(?P<ab>Mr|Mrs|Ms|Dr|Prof|St|Gen|Capt|Lt|Sgt|Col|Rev|Gov|Sen|Fr|Mt|Ft|Hon|Supt|Insp|Ave|Rd|Blvd|Ln|Ct"
    r"|Sq|Pl|Hwy)\.)",
    r"(?P<abbr>(?<!\w)(?:etc\.|e\.g\.|i\.e\.|vs\.|approx\.|Jr\.|Sr\.|Ltd\.|Inc\.|Fig\.|Vol\.|Ch\.|Dept\.|Univ\.))",
]
_NUMBER_ALTS = [
    rf"(?P<money>(?P<cur>[$£€¥])\s?(?P<amt>{NUM})(?:\s(?P<scale>{SCALES})\b)?)",
    r"(?P<iso>\b(?P<iy>1\d{3}|20\d{2})-(?P<im>0[1-9]|1[0-2])-(?P<id>0[1-9]|[12]\d|3[01])\b)",
    rf"(?P<mdy>\b(?P<m1>{MONTH_RE})\s(?P<d1>[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\b(?:,?\s(?P<y1>1\d{{3}}|20\d{{2}})\b)?)",
    rf"(?P<dmy>\b(?P<d2>[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\s(?P<m2>{MONTH_RE})(?:,?\s(?P<y2>1\d{{3}}|20\d{{2}})\b)?)",
    r"(?P<numdate>\b(?P<na>[1-9]|[12]\d|3[01]|0[1-9])/(?P<nb>[1-9]|[12]\d|3[01]|0[1-9])/(?P<ny>1\d{3}|20\d{2})\b)",
    r"(?P<time>\b(?P<hh>[01]?\d|2[0-3]):(?P<mm>[0-5]\d)(?::(?P<ss>[0-5]\d))?"
    r"(?:\s?(?P<ap1>[aApP])\.?\s?[mM]\.?(?![\w]))?)",
    r"(?P<hour>\b(?P<h2>1[0-2]|[1-9])\s?(?P<ap2>[aApP])\.?\s?[mM]\.?(?!\w))",
    rf"(?P<percent>(?<![\w.])(?P<pn>-?(?:{NUM}))\s?%)",
    r"(?P<range>(?<![\w.,/:-])(?P<ra>\d{1,4})\s?[–-]\s?(?P<rb>\d{1,4})(?![\w.,/:]\d|[\w%]))",
    r"(?P<decade>(?<![\w'])(?P<dc>1\d{2}0|20\d0|['’]\d0)s\b)",
    r"(?P<ordinal>\b(?P<on>\d{1,9})(?:st|nd|rd|th)\b)",
    r"(?P<fraction>(?<![\w/])(?P<fa>\d{1,3})/(?P<fb>\d{1,3})(?![\w/]))",
    rf"(?P<unit>(?<![\w.])(?P<un>{NUM})\s?(?P<uu>{UNIT_RE})(?![\w/]))",
    rf"(?P<number>(?<![\w.,])(?P<neg>[-−](?=\d))?(?P<num>{NUM})(?![\w]|[.,]\d))",
    r"(?P<numsign>#(?P<ns>\d+)\b)",
    r"(?P<approx>~(?=\d))",
    r"(?P<symbol>(?<=\s)[&+=@×](?=\s)|[§©®™½¼¾⅓⅔])",
]
WORD_PATTERN = re.compile("|".join(_WORD_ALTS))
NUMBER_PATTERN = re.compile("|".join(_NUMBER_ALTS))
_NUMBER_TRIGGER = re.compile(r"[\d$£€¥%&+=@#~§©®™½¼¾⅓⅔×]")
_ABBR_WORDS = frozenset({*TITLES, *STREETS, *(k.rstrip(".") for k in OTHER_ABBR), "e.g", "i.e"})
_ROMAN_AFTER = frozenset(KEYWORD_ROMAN.replace("\\", "").split("|")) | {n.lower() for n in REGNAL}
_ROMAN_CHARS = frozenset("IVXLCDM")
_TOKEN_RE = re.compile(r"\S+")
# One C-speed search says whether _word_triggers needs to look at the words at all.
_WORD_HINT_RE = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(a) for a in sorted(_ABBR_WORDS, key=len, reverse=True))
                           + r")\.|www\.|://|@| [IVXLCDM]+\b")


def _word_triggers(text: str) -> list[int]:
    """Where WORD_PATTERN could match: the start of each word that is a known abbreviation, that
    precedes a Roman numeral after a keyword or regnal name, or holds a URL or an address."""
    out: list[int] = []
    if not _WORD_HINT_RE.search(text):
        return out
    prev_start, prev = 0, ""
    for m in _TOKEN_RE.finditer(text):
        word = m.group()
        if word.endswith(".") and word.strip("\"“‘'([")[:-1] in _ABBR_WORDS or "@" in word or "://" in word \
                or word.startswith("www."):
            out.append(m.start())
        core = word.rstrip(".,;:!?)]’”'\"")
        if core and _ROMAN_CHARS.issuperset(core) and prev.strip("\"“‘'([").lower() in _ROMAN_AFTER:
            out.append(prev_start)
        prev_start, prev = m.start(), word
    return sorted(out)


def _scan(pattern: re.Pattern, text: str, positions, back: int) -> list[re.Match]:
    """``pattern``'s matches found by searching from just before each trigger position, not by
    scanning the whole text (its many alternatives make a full scan slow on long paragraphs)."""
    out: list[re.Match] = []
    end = 0
    for pos in positions:
        if pos < end:
            continue
        m = pattern.search(text, max(end, pos - back))
        if m is None:
            break
        out.append(m)
        end = m.end()
    return out


HEADING_ROMAN_RE = re.compile(r"(?<![\w'])(?P<r>[IVXLCDM]+)(?![\w'])")
_ENDS_PHRASE_RE = re.compile(r"\s*(?:$|[.,;:!?)\]—–])")
# Words that start a new sentence after "Baker St." rather than name a saint or a doctor.
SENTENCE_STARTERS = frozenset("The Then He She It They We I You A An But And So There This That When While In On At "
                              "After Before His Her Its Their Our My No Yes If As".split())
SENTENCE_END_AFTER_RE = re.compile(r"\s*$|\s+[\"“‘'(\[]?[A-Z]")


def _spell_url(s: str) -> str:
    s = re.sub(r"^https?://", "", s)
    s = re.sub(r"^www\.", "w w w dot ", s)
    out = []
    for ch in s:
        out.append({".": " dot ", "/": " slash ", ":": " colon ", "-": " dash ", "_": " underscore ",
                    "?": " question mark ", "=": " equals ", "&": " and ", "#": " hash ", "~": " tilde ",
                    "@": " at ", "+": " plus ", "%": " percent "}.get(ch, ch))
    return " ".join("".join(out).split())


class Normalizer:
    """English normalization; ``changes(text, heading=False)`` lists what it would change."""

    def __init__(self, language: str = "en"):
        self.day_first = language.lower() in ("en-gb", "en-au", "en-nz", "en-ie", "en-in", "en-za")

    def changes(self, text: str, heading: bool = False) -> list[Change]:
        out: list[Change] = []
        if heading:   # short: search everything
            found = [*NUMBER_PATTERN.finditer(text), *WORD_PATTERN.finditer(text)]
        else:         # a month name may stand up to 10 characters before its day's digits
            found = _scan(NUMBER_PATTERN, text, (m.start() for m in _NUMBER_TRIGGER.finditer(text)), 11)
            found += _scan(WORD_PATTERN, text, _word_triggers(text), 0)
        found.sort(key=lambda m: (m.start(), m.start() - m.end()))
        taken_to = -1
        for m in found:
            if m.start() < taken_to:      # inside an earlier (or longer) match: the first one wins
                continue
            taken_to = m.end()
            spoken = self._spoken(m, text)
            if spoken is not None and spoken != m.group():
                start, end = m.span()
                if m.lastgroup in ("kwroman", "regnal"):   # the change is the numeral, not the word before it
                    start = m.start("kr" if m.lastgroup == "kwroman" else "rr")
                    spoken = spoken[len(m.group("kw" if m.lastgroup == "kwroman" else "rn")) + 1:]
                ends_sentence = m.lastgroup in ("time", "hour") or m.lastgroup == "abbr2" and \
                    spoken not in TITLES.values() or m.lastgroup == "abbr" and m.group() in ABBR_CAN_END
                if ends_sentence and text[end - 1] == "." and SENTENCE_END_AFTER_RE.match(text, end) and \
                        not spoken.endswith("."):
                    spoken += "."   # the abbreviation's period also ended the sentence
                out.append(Change(start, end, text[start:end], spoken))
        if heading:
            taken = [(c.start, c.end) for c in out]
            for m in HEADING_ROMAN_RE.finditer(text):
                v = _roman_value(m.group("r"))
                if v is None or any(a < m.end() and m.start() < b for a, b in taken):
                    continue
                if m.group("r") == "I" and text.strip() not in ("I", "I.") and not text[m.end():m.end() + 1] in ".:":
                    continue   # the pronoun, not the number one
                out.append(Change(m.start(), m.end(), m.group(), _card(v)))
            out.sort(key=lambda c: c.start)
        return out

    def _spoken(self, m: re.Match, text: str) -> str | None:
        g = m.group
        kind = m.lastgroup
        if kind == "url":
            return _spell_url(g("url"))
        if kind == "email":
            local, _, domain = g("email").partition("@")
            return _spell_url(local) + " at " + _spell_url(domain)
        if kind == "money":
            one, many, sub1, subs = CURRENCY[g("cur")]
            amt = g("amt").replace(",", "")
            if g("scale"):
                return f"{_number(amt)} {g('scale')} {many}"
            whole, _, frac = amt.partition(".")
            w = int(whole)
            parts = []
            if w or not frac:
                parts.append(f"{_card(w)} {one if w == 1 else many}")
            if frac and len(frac) == 2 and int(frac) and sub1:
                c = int(frac)
                parts.append(f"{_card(c)} {sub1 if c == 1 else subs}")
            elif frac and int(frac) and not (len(frac) == 2 and sub1):
                return f"{_number(amt)} {many}"
            return " and ".join(parts)
        if kind == "iso":
            return self._date(int(g("im")), int(g("id")), int(g("iy")), day_first=False)
        if kind == "mdy":
            return self._date(self._month(g("m1")), int(g("d1")), int(g("y1")) if g("y1") else None, day_first=False)
        if kind == "dmy":
            return self._date(self._month(g("m2")), int(g("d2")), int(g("y2")) if g("y2") else None, day_first=True)
        if kind == "numdate":
            a, b = int(g("na")), int(g("nb"))
            day, month = (a, b) if self.day_first else (b, a)
            if month > 12:
                return None
            return self._date(month, day, int(g("ny")), day_first=self.day_first)
        if kind == "time":
            h, mi = int(g("hh")), int(g("mm"))
            if g("ss"):
                return None   # a duration or a timestamp: left as written
            ap = f" {g('ap1').lower()} m" if g("ap1") else ""
            if mi == 0:
                return f"{_card(h)}{ap}" if ap else f"{_card(h)} o'clock" if h <= 12 else f"{_card(h)} hundred"
            minutes = f"oh {_card(mi)}" if mi < 10 else _card(mi)
            return f"{_card(h)} {minutes}{ap}"
        if kind == "hour":
            return f"{_card(int(g('h2')))} {g('ap2').lower()} m"
        if kind == "percent":
            return f"{_number(g('pn'))} percent"
        if kind == "range":
            a, b = g("ra"), g("rb")
            if int(a) >= int(b) and len(b) >= len(a):
                return None
            if len(a) == 4 and len(b) == 4 and 1000 <= int(a) <= 2099:
                return f"{_year(int(a))} to {_year(int(b))}"
            return f"{_number(a)} to {_number(b)}"
        if kind == "decade":
            d = g("dc")
            if d[0] in "'’":
                return num2words(int(d[1:]), lang="en", to="cardinal").replace("ty", "ties")
            words = _year(int(d))
            last = words.rsplit(" ", 1)
            tens = last[-1]
            plural = tens[:-1] + "ies" if tens.endswith("y") else tens + "s"
            return (last[0] + " " + plural) if len(last) == 2 else plural
        if kind == "ordinal":
            return _ord(int(g("on")))
        if kind == "fraction":
            a, b = int(g("fa")), int(g("fb"))
            if b == 0:
                return None
            if (a, b) in FRACTIONS:
                return FRACTIONS[(a, b)]
            return f"{_card(a)} over {_card(b)}"
        if kind == "unit":
            n, u = g("un"), g("uu")
            one, many = UNITS[u]
            return f"{_number(n)} {one if n == '1' else many}"
        if kind == "number":
            num = g("num")
            plain = num.replace(",", "")
            if not g("neg") and "." not in plain and "," not in num and len(plain) == 4 and \
                    1000 <= int(plain) <= 2099 and self._reads_as_year(text, m.start(), m.end()):
                return _year(int(plain))
            return _number((g("neg") or "") + num)
        if kind == "kwroman":
            v = _roman_value(g("kr"))
            if v is None:
                return None
            if len(g("kr")) == 1 and g("kw")[:1].islower() and not _ENDS_PHRASE_RE.match(text, m.end()):
                return None   # "before the war I was": the pronoun (or a letter), not a number
            return f"{g('kw')} {_card(v)}"
        if kind == "regnal":
            v = _roman_value(g("rr"))
            if v is None:
                return None
            return f"{g('rn')} the {_ord(v)}"
        if kind == "abbr2":
            return self._title_or_street(g("ab"), text, m.start(), m.end())
        if kind == "abbr":
            return OTHER_ABBR[g("abbr")]
        if kind == "numsign":
            return f"number {_number(g('ns'))}"
        if kind == "approx":
            return "about "
        if kind == "symbol":
            return SYMBOLS[g("symbol")]
        return None   # pragma: no cover

    @staticmethod
    def _month(s: str) -> int:
        key = s.rstrip(".").lower()
        name = MONTH_ABBR.get(key[:4] if key.startswith("sept") else key[:3], key)
        return MONTHS.index(name) + 1

    def _date(self, month: int, day: int, year: int | None, *, day_first: bool) -> str:
        name = MONTHS[month - 1].capitalize()
        y = f", {_year(year)}" if year else ""
        if day_first:
            return f"the {_ord(day)} of {name}{y}"
        return f"{name} {_ord(day)}{y}"

    @staticmethod
    def _reads_as_year(text: str, start: int, end: int) -> bool:
        """A four-digit number from 1100 to 2099 is read as a year unless a lowercase word follows it
        ('1500 soldiers') and no year cue ('in', 'since', 'of'...) precedes it."""
        before = text[:start].rstrip().rsplit(None, 1)
        prev = before[-1].lower().strip("(\"“") if before else ""
        if prev in YEAR_CUES:
            return True
        after = text[end:end + 2]
        return not (after[:1] == " " and after[1:2].islower())

    @staticmethod
    def _title_or_street(abbr: str, text: str, start: int, end: int) -> str | None:
        """Dr./St. before a name are Doctor/Saint; after a street's name or number, Drive/Street."""
        nxt = re.match(r"\s+([\"“]?)([A-Z][\w'’-]*)", text[end:])
        before = text[:start].rstrip()
        words = before.split()
        prev = words[-1] if words else ""
        pprev = words[-2] if len(words) > 1 else ""
        # is ``prev`` the first word of a sentence (so its capital says nothing)?
        sentence_start = not pprev or (pprev[-1] in ".!?\"”" and pprev.rstrip(".") not in TITLES | STREETS)
        after_name = bool(prev) and (prev[:1].isupper() and not sentence_start or prev[:1].isdigit())
        if abbr in STREETS and abbr not in TITLES:
            return STREETS[abbr]
        if abbr in TITLES and abbr not in STREETS:
            return TITLES[abbr]
        # Dr / St: both
        if after_name and (not nxt or prev[:1].isdigit() or nxt.group(2) in SENTENCE_STARTERS):
            return STREETS[abbr]
        if nxt:
            return TITLES[abbr]
        if after_name:
            return STREETS[abbr]
        return TITLES[abbr] if not before or before[-1] in ".!?\"”" else STREETS[abbr]


def is_english(language: str) -> bool:
    return language.lower().split("-")[0] == "en"


@lru_cache(maxsize=8)
def normalizer_for(language: str) -> Normalizer | None:
    return Normalizer(language) if is_english(language) else None


class SpeechText:
    """The lexicon and the normalizer as one rewrite: what the planner measures and Dia reads.

    ``apply(s)`` gives the spoken text; ``spans(s)`` where each of its non-space characters came
    from in ``s`` (as ``planner.compile_lexicon_spans``); ``changes(s)`` the normalizations made.
    Lexicon matches are taken first; a normalization overlapping one is dropped (the lexicon wins).
    """

    def __init__(self, lexicon: dict[str, str], normalizer: Normalizer | None):
        self.lexicon = lexicon
        self.normalizer = normalizer
        keys = sorted(lexicon, key=len, reverse=True)
        self.rx = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(k) for k in keys) + r")(?!\w)") if lexicon else None
        self._last_key: tuple | None = None
        self._last: tuple = ([], [])

    @classmethod
    def for_project(cls, project) -> "SpeechText":
        """The project's lexicon, and normalization unless ``normalize: false`` or not English."""
        return cls(project.lexicon, normalizer_for(project.language) if project.normalize else None)

    @property
    def active(self) -> bool:
        return bool(self.lexicon) or self.normalizer is not None

    def _edits(self, s: str, heading: bool) -> tuple[list[tuple[int, int, str]], list[Change]]:
        key = (s, heading)
        if self._last_key == key:    # apply, spans and changes are asked for the same text in a row
            return self._last
        self._last_key, self._last = key, self._compute(s, heading)
        return self._last

    def _compute(self, s: str, heading: bool) -> tuple[list[tuple[int, int, str]], list[Change]]:
        edits = [(m.start(), m.end(), self.lexicon[m.group()]) for m in self.rx.finditer(s)] if self.rx else []
        norm: list[Change] = []
        if self.normalizer is not None:
            for c in self.normalizer.changes(s, heading):
                if not any(a < c.end and c.start < b for a, b, _ in edits):
                    norm.append(c)
            if norm:
                edits = sorted(edits + [(c.start, c.end, c.spoken) for c in norm])
        return edits, norm

    def apply(self, s: str, heading: bool = False) -> str:
        edits, _ = self._edits(s, heading)
        if not edits:
            return s
        out, pos = [], 0
        for a, b, rep in edits:
            out.append(s[pos:a])
            out.append(rep)
            pos = b
        out.append(s[pos:])
        return " ".join("".join(out).split())

    def spans(self, s: str, heading: bool = False) -> list[tuple[int, int, bool]]:
        edits, _ = self._edits(s, heading)
        out: list[tuple[int, int, bool]] = []
        pos = 0
        for a, b, rep in edits:
            out.extend((i, i + 1, True) for i in range(pos, a) if not s[i].isspace())
            n = sum(not c.isspace() for c in rep)
            out.extend((a, b, i == 0) for i in range(n))
            pos = b
        out.extend((i, i + 1, True) for i in range(pos, len(s)) if not s[i].isspace())
        return out

    def changes(self, s: str, heading: bool = False) -> list[Change]:
        return self._edits(s, heading)[1]


def normalize_text(text: str, language: str = "en", heading: bool = False) -> str:
    """``text`` as spoken (no lexicon)."""
    return SpeechText({}, normalizer_for(language)).apply(text, heading)


__all__ = ["Normalizer", "Change", "SpeechText", "normalize_text", "normalizer_for", "is_english"]
