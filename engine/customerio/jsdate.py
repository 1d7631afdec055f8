"""JavaScript's reading of date strings: V8's ``Date.parse`` and ``dayjs.utc``, in Python.

Segment's Customer.io destination decides "is this a date" and "which instant" in JavaScript;
this module answers the same questions, with local time taken as UTC. It knows nothing of
Customer.io's rules (that is :mod:`engine.customerio.timestamps`).

:func:`v8_date_parse` is a port of V8's DateParser and the reference. :func:`js_date_parse`
gives the same answer for every string, faster: the strict ISO form every SDK sends is read by
one regular expression, and :func:`could_be_date` turns away text that V8 can only refuse
before any token is read. tests/test_customerio_jsdate.py checks both against the port on
random strings. Safe to call from any thread: the one piece of state is an ``lru_cache`` of
day numbers.
"""
from __future__ import annotations

import functools
import re

# -- the fast paths ------------------------------------------------------------------------

# The ES5 date-time format with a four-digit year, as V8's first reader (``_es5`` below) takes
# it to the end: every digit run is whole, so each group is a token the port would read.
_ES5_ISO = re.compile(
    r"([0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?)"
    r"(?:[Tt]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(?:[Zz]|([+-])([0-9]{2}):?([0-9]{2}))?)?"
)
_DIGIT = re.compile(r"[0-9]")
_DIGITS = frozenset("0123456789")
# A run of the characters V8's tokenizer reads as one word: from "A" up, except white space.
_WORD_RUN = re.compile(r"[^\x00-\x40\s]+")


def js_date_parse(text: str) -> int | None:
    """Milliseconds since the epoch as JavaScript's ``Date.parse(text)`` (V8) reads it, or None (NaN)."""
    value = _read_iso(text)
    if value is not None:
        return value
    if not could_be_date(text):
        return None
    return v8_date_parse(text)


def could_be_date(text: str) -> bool:
    """False when ``Date.parse(text)`` is NaN for certain, decided without reading a token.

    V8 needs a number for the day, so text without an ASCII digit is no date. It refuses a
    word it does not know (it knows months, am/pm, zone names, ``T`` and ``Z``) once it has
    read a number, or when a number follows the word at once: ``anon-3e4``, ``user42@x.io``.
    A parenthesis opens a comment that can hide any word, so text with one is left to the parser.
    """
    # A year of "-000000" is read and dropped, as V8 does, before the day's numbers begin.
    first = _DIGIT.search(text, 7 if text.startswith("-000000") and text[7:8] not in _DIGITS else 0)
    if first is None:
        return False
    if "(" in text:
        return True
    for word in _WORD_RUN.finditer(text):
        after = text[word.end():word.end() + 1]
        if _keyword(word.group()) is None and (word.start() > first.start() or after in _DIGITS):
            return False
    return True


def _read_iso(text: str) -> int | None:
    """The time value of ``text`` in the strict ISO form, or None where the port must decide.

    None covers text of another form and parts out of range (month 13, hour 25), whose
    answers the port gives. A four-digit year is always within JavaScript's range.
    """
    iso = _ES5_ISO.fullmatch(text)
    if iso is None:
        return None
    date, hour, minute, second, fraction, zone_sign, zone_hour, zone_minute = iso.groups()
    days = _days_of(date)
    if days is None:
        return None
    if hour is None:
        return days * _MS_PER_DAY
    h, m, s = int(hour), int(minute), int(second) if second else 0
    if h > 23 or m > 59 or s > 59:   # 24:00 is the next midnight, but only with zeros after it
        return None
    value = days * _MS_PER_DAY + ((h * 60 + m) * 60 + s) * 1000
    if fraction:
        value += int(fraction) if len(fraction) == 3 else _milliseconds(*_number(fraction))
    if zone_sign is not None:
        zh, zm = int(zone_hour), int(zone_minute)
        if zh > 23 or zm > 59:
            return None
        value -= (zh * 60 + zm) * (60_000 if zone_sign == "+" else -60_000)
    return value


@functools.lru_cache(maxsize=4096)
def _days_of(date: str) -> int | None:
    """Days from 1970-01-01 to an ISO date ``yyyy[-mm[-dd]]``; None for a month or day V8 refuses.

    Cached: the events of a stream fall on few days. A day past the month's end rolls over
    (February 30th is March 2nd), as MakeDay does.
    """
    month = int(date[5:7]) if len(date) > 4 else 1
    day = int(date[8:10]) if len(date) > 7 else 1
    if not (0 < month < 13 and 0 < day < 32):
        return None
    return _days_from_civil(int(date[:4]), month, 1) + day - 1


# -- dayjs ---------------------------------------------------------------------------------

# dayjs's own pattern (REGEX_PARSE in dayjs/src/constant.js); a string ending in Z skips it.
_DAYJS = re.compile(
    r"([0-9]{4})[-/]?([0-9]{1,2})?[-/]?([0-9]{0,2})[Tt\s]*([0-9]{1,2})?:?([0-9]{1,2})?:?([0-9]{1,2})?[.:]?([0-9]+)?"
)


def dayjs_utc(text: str) -> int | None:
    """Milliseconds since the epoch as ``dayjs.utc(text)`` reads ``text``, or None when it is invalid."""
    if not text.endswith(("Z", "z")):
        parts = _DAYJS.fullmatch(text)
        if parts:
            year, month, day, hour, minute, second, fraction = parts.groups()
            # dayjs: month "" or missing is January; day "" is the 1st; only 3 fraction digits, as written.
            return _date_utc(int(year), int(month) - 1 if month else 0, int(day) if day else 1,
                             int(hour or 0), int(minute or 0), int(second or 0), int((fraction or "0")[:3]))
    return js_date_parse(text)


# -- ECMAScript time values ----------------------------------------------------------------

_MS_PER_DAY = 86_400_000
_MAX_TIME = 8.64e15


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (month 1..12)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _make_date(year: int, month0: int, day: int, hour: int, minute: int, second: int, millisecond: int) -> int | None:
    """ECMAScript MakeDate(MakeDay(...), MakeTime(...)) with TimeClip: out-of-range parts roll over."""
    days = _days_from_civil(year + month0 // 12, month0 % 12 + 1, 1) + day - 1
    value = days * _MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millisecond
    return value if abs(value) <= _MAX_TIME else None


def _time_value(year: int, month0: int, day: int, hour: int, minute: int, second: int, millisecond: int,
                offset_seconds: int) -> int | None:
    """The time value of a local date and time ``offset_seconds`` east of UTC, or None past JavaScript's range."""
    value = _make_date(year, month0, day, hour, minute, second, millisecond)
    if value is None:
        return None
    value -= offset_seconds * 1000
    return value if abs(value) <= _MAX_TIME else None


def _date_utc(year, month0, day, hour, minute, second, millisecond) -> int | None:
    """``Date.UTC``: a two-digit year means 19xx."""
    if 0 <= year <= 99:
        year += 1900
    return _make_date(year, month0, day, hour, minute, second, millisecond)


# -- V8's Date.parse -----------------------------------------------------------------------
#
# A port of V8's DateParser (src/date/dateparser-inl.h): first the ES5 ISO format, then the
# legacy reader that accepts "Mar 25 2015", "25 Mar 2015 10:00 GMT+0100", "01/01/2019" and
# many more. Local time is UTC here.

_NUMBER, _SYMBOL, _WORD, _SPACE, _UNKNOWN, _END = range(6)
_MONTH, _AM_PM, _ZONE, _T = "month", "am/pm", "zone", "T"
_KEYWORDS = {
    **{name: (_MONTH, index) for index, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)},
    "am": (_AM_PM, 0), "pm": (_AM_PM, 12),
    "ut": (_ZONE, 0), "utc": (_ZONE, 0), "z": (_ZONE, 0), "gmt": (_ZONE, 0),
    "cdt": (_ZONE, -5), "cst": (_ZONE, -6), "edt": (_ZONE, -4), "est": (_ZONE, -5),
    "mdt": (_ZONE, -6), "mst": (_ZONE, -7), "pdt": (_ZONE, -7), "pst": (_ZONE, -8),
    "t": (_T, 0),
}


class _Token:
    __slots__ = ("keyword", "kind", "length", "value")

    def __init__(self, kind, value=None, length=0, keyword=None):
        self.kind, self.value, self.length, self.keyword = kind, value, length, keyword

    def number(self, length: int | None = None) -> bool:
        return self.kind == _NUMBER and (length is None or self.length == length)

    def symbol(self, char: str) -> bool:
        return self.kind == _SYMBOL and self.value == char

    @property
    def sign(self) -> bool:
        return self.kind == _SYMBOL and self.value in "+-"

    @property
    def zone_z(self) -> bool:
        return self.kind == _WORD and self.keyword == _ZONE and self.length == 1 and self.value == 0


_INVALID = _Token(_UNKNOWN, "invalid")
_END_TOKEN = _Token(_END)


def _number(digits: str) -> tuple[int, int]:
    """A number token's value and length: V8 keeps nine significant digits."""
    return int(digits.lstrip("0")[:9] or "0"), len(digits)


def _keyword(word: str) -> tuple[str, int] | None:
    """What a word means to V8, from its first three letters (folded as V8 folds them), or None."""
    found = _KEYWORDS.get("".join(chr(ord(c) | 0x20) for c in word[:3]))
    return found if found and (len(word) <= 3 or found[0] == _MONTH) else None


def _tokens(text: str) -> list[_Token]:
    out, i, n = [], 0, len(text)
    while i < n:
        char = text[i]
        if "0" <= char <= "9":
            j = i
            while j < n and "0" <= text[j] <= "9":
                j += 1
            out.append(_Token(_NUMBER, *_number(text[i:j])))
            i = j
        elif char in ":-+.)":
            out.append(_Token(_SYMBOL, char))
            i += 1
        elif char >= "A" and not char.isspace():
            j = i
            while j < n and text[j] >= "A" and not text[j].isspace():
                j += 1
            word = text[i:j]
            found = _keyword(word)
            if found:
                out.append(_Token(_WORD, found[1], len(word), found[0]))
            else:
                out.append(_Token(_WORD, 0, len(word), None))
            i = j
        elif char.isspace():
            j = i
            while j < n and text[j].isspace():
                j += 1
            out.append(_Token(_SPACE, None, j - i))
            i = j
        elif char == "(":
            depth = 0
            while i < n:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
                if depth <= 0:
                    break
            out.append(_Token(_UNKNOWN))
        else:
            out.append(_Token(_UNKNOWN))
            i += 1
    return out


class _Scanner:
    def __init__(self, text: str):
        self._tokens = _tokens(text)
        self._at = 0

    def peek(self) -> _Token:
        return self._tokens[self._at] if self._at < len(self._tokens) else _END_TOKEN

    def next(self) -> _Token:
        token = self.peek()
        self._at += 1
        return token

    def skip(self, char: str) -> bool:
        if self.peek().symbol(char):
            self._at += 1
            return True
        return False


def _milliseconds(number: int, length: int) -> int:
    """The first three significant digits of a fraction, as V8's ReadMilliseconds."""
    if length == 1:
        return number * 100
    if length == 2:
        return number * 10
    if length > 3:
        return number // 10 ** (min(length, 9) - 3)
    return number


def _milliseconds_of(token: _Token) -> int:
    return _milliseconds(token.value, token.length)


class _Day:
    def __init__(self) -> None:
        self.parts: list[int] = []
        self.named_month = None
        self.iso = False

    def add(self, n: int) -> bool:
        if len(self.parts) >= 3:
            return False
        self.parts.append(n)
        return True

    def write(self) -> tuple[int, int, int] | None:
        if not self.parts:
            return None
        parts = self.parts + [1] * (3 - len(self.parts))
        if self.named_month is None:
            if self.iso or not 1 <= parts[0] <= 31:
                year, month, day = parts
            else:
                month, day, year = parts
        else:
            month = self.named_month
            if not 1 <= parts[0] <= 31:
                year, day = parts[0], parts[1]
            else:
                day, year = parts[0], parts[1]
        if not self.iso:
            if 0 <= year <= 49:
                year += 2000
            elif 50 <= year <= 99:
                year += 1900
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        return year, month - 1, day


class _Time:
    def __init__(self):
        self.parts: list[int] = []
        self.hour_offset = None

    @property
    def empty(self) -> bool:
        return not self.parts

    def expecting(self, n: int) -> bool:
        index = len(self.parts)
        return (index == 1 and 0 <= n <= 59) or (index == 2 and 0 <= n <= 59) or (index == 3 and 0 <= n <= 999)

    def add(self, n: int) -> bool:
        if len(self.parts) >= 4:
            return False
        self.parts.append(n)
        return True

    def add_final(self, n: int) -> bool:
        if not self.add(n):
            return False
        self.parts += [0] * (4 - len(self.parts))
        return True

    def write(self) -> tuple[int, int, int, int] | None:
        hour, minute, second, millisecond = self.parts + [0] * (4 - len(self.parts))
        if self.hour_offset is not None:
            if not 0 <= hour <= 12:
                return None
            hour = hour % 12 + self.hour_offset
        in_range = 0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59 and 0 <= millisecond <= 999
        if not in_range and (hour, minute, second, millisecond) != (24, 0, 0, 0):
            return None
        return hour, minute, second, millisecond


class _Zone:
    def __init__(self):
        self.sign = None
        self.hour = None
        self.minute = None

    def set(self, hours: int) -> None:
        self.sign = -1 if hours < 0 else 1
        self.hour, self.minute = abs(hours), 0

    @property
    def empty(self) -> bool:
        return self.hour is None

    @property
    def utc(self) -> bool:
        return self.hour == 0 and self.minute == 0

    def expecting(self, n: int) -> bool:
        return self.hour is not None and self.minute is None and 0 <= n <= 59

    def offset_seconds(self) -> int:
        """Seconds east of UTC; 0 when no zone was given (local time is UTC here)."""
        if self.sign is None:
            return 0
        return self.sign * ((self.hour or 0) * 3600 + (self.minute or 0) * 60)


def _es5(scanner: _Scanner, day: _Day, time: _Time, zone: _Zone) -> _Token:
    """Read the ES5 ISO format; return the first token it leaves to the legacy reader."""
    if scanner.peek().sign:
        sign = scanner.next()
        if not scanner.peek().number(6):
            return sign
        year = scanner.next().value
        if sign.value == "-" and year == 0:
            return sign
        day.add(-year if sign.value == "-" else year)
    elif scanner.peek().number(4):
        day.add(scanner.next().value)
    else:
        return scanner.next()
    if scanner.skip("-"):
        if not scanner.peek().number(2) or not 1 <= scanner.peek().value <= 12:
            return scanner.next()
        day.add(scanner.next().value)
        if scanner.skip("-"):
            if not scanner.peek().number(2) or not 1 <= scanner.peek().value <= 31:
                return scanner.next()
            day.add(scanner.next().value)
    if not (scanner.peek().kind == _WORD and scanner.peek().keyword == _T):
        if scanner.peek().kind != _END:
            return scanner.next()
    else:
        scanner.next()
        if not scanner.peek().number(2) or not 0 <= scanner.peek().value <= 24:
            return _INVALID
        hour_is_24 = scanner.peek().value == 24
        time.add(scanner.next().value)
        if not scanner.skip(":"):
            return _INVALID
        if not scanner.peek().number(2) or not 0 <= scanner.peek().value <= 59 or (hour_is_24 and scanner.peek().value):
            return _INVALID
        time.add(scanner.next().value)
        if scanner.skip(":"):
            if not scanner.peek().number(2) or not 0 <= scanner.peek().value <= 59 or (
                    hour_is_24 and scanner.peek().value):
                return _INVALID
            time.add(scanner.next().value)
            if scanner.skip("."):
                if not scanner.peek().number() or (hour_is_24 and scanner.peek().value):
                    return _INVALID
                time.add(_milliseconds_of(scanner.next()))
        if scanner.peek().zone_z:
            scanner.next()
            zone.set(0)
        elif scanner.peek().sign:
            zone.sign = 1 if scanner.next().value == "+" else -1
            if scanner.peek().number(4):
                hour, minute = divmod(scanner.next().value, 100)
                if not (0 <= hour <= 23 and 0 <= minute <= 59):
                    return _INVALID
                zone.hour, zone.minute = hour, minute
            else:
                if not scanner.peek().number(2) or not 0 <= scanner.peek().value <= 23:
                    return _INVALID
                zone.hour = scanner.next().value
                if not scanner.skip(":"):
                    return _INVALID
                if not scanner.peek().number(2) or not 0 <= scanner.peek().value <= 59:
                    return _INVALID
                zone.minute = scanner.next().value
        if scanner.peek().kind != _END:
            return _INVALID
    # "When the time zone offset is absent, date-only forms are interpreted as a UTC time."
    if zone.empty and time.empty:
        zone.set(0)
    day.iso = True
    return _END_TOKEN


def v8_date_parse(text: str) -> int | None:
    """``Date.parse(text)`` read by the port of V8's parser alone, without the fast paths; None is NaN."""
    scanner = _Scanner(text)
    day, time, zone = _Day(), _Time(), _Zone()
    token = _es5(scanner, day, time, zone)
    if token is _INVALID:
        return None
    has_read_number = bool(day.parts)
    while token.kind != _END:
        if token.kind == _NUMBER:
            has_read_number = True
            n = token.value
            if scanner.skip(":"):
                if scanner.skip(":"):
                    if not time.empty:
                        return None
                    time.add(n)
                    time.add(0)
                else:
                    if not time.add(n):
                        return None
                    if scanner.peek().symbol("."):
                        scanner.next()
            elif scanner.skip(".") and time.expecting(n):
                time.add(n)
                if not scanner.peek().number():
                    return None
                time.add_final(_milliseconds_of(scanner.next()))
            elif zone.expecting(n):
                zone.minute = n
            elif time.expecting(n):
                time.add_final(n)
                after = scanner.peek()
                if after.kind not in (_END, _SPACE) and not after.zone_z and not after.sign:
                    return None
            else:
                if not day.add(n):
                    return None
                scanner.skip("-")
        elif token.kind == _WORD:
            if token.keyword == _AM_PM and not time.empty:
                time.hour_offset = token.value
            elif token.keyword == _MONTH:
                day.named_month = token.value
                scanner.skip("-")
            elif token.keyword == _ZONE and has_read_number:
                zone.set(token.value)
            else:
                # A word Date does not know is allowed only before the first number ("Wed, 25 Mar").
                if has_read_number or scanner.peek().number():
                    return None
        elif token.sign and (zone.utc or not time.empty):
            zone.sign = 1 if token.value == "+" else -1
            n = length = 0
            if scanner.peek().number():
                number = scanner.next()
                n, length = number.value, number.length
            has_read_number = True
            if scanner.peek().symbol(":"):
                zone.hour, zone.minute = n, None
            elif length in (1, 2):
                zone.hour, zone.minute = n, 0
            elif length in (3, 4):
                zone.hour, zone.minute = divmod(n, 100)
            else:
                return None
        elif (token.sign or token.symbol(")")) and has_read_number:
            return None
        token = scanner.next()
    date, clock = day.write(), time.write()
    if date is None or clock is None:
        return None
    return _time_value(*date, *clock, zone.offset_seconds())
