"""Arrow nanosecond times, timestamps and durations as metadata, at full precision and without pandas.

pyarrow gives a Python value for one of them that cannot hold its nanoseconds: a `datetime.time` for a
time64[ns] (cut to microseconds), and for a timestamp[ns] or duration[ns] whose nanoseconds are not whole
microseconds a pandas Timestamp or Timedelta when pandas is installed (it is not a slimvec dependency), else a
ValueError that stopped the whole file. `ns_as_plain` replaces every such value, at any depth of a column (lists,
structs, maps), by what the other temporal types of a table become (`tables._jsonable`): a time or a timestamp
as ISO 8601 text, as `isoformat` writes one, with 9 fraction digits when the nanoseconds are not whole
microseconds ("12:30:05.000000123", "2020-09-13T12:26:40.000000123+00:00"); a duration as seconds (a float).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1)
_OFFSET = re.compile(r"^([+-])(\d\d):?(\d\d)$")


def ns_as_plain(batch: Any) -> Any:
    """`batch` (a pyarrow RecordBatch) with each column holding a nanosecond time, timestamp or duration anywhere
    in its type rebuilt with those values as text (times, timestamps) or float seconds (durations); the very
    batch when it holds none. Raises ValueError for a timestamp's time zone that this machine does not know."""
    import pyarrow as pa  # deferred: a slow import that most runs never need

    todo = [i for i, f in enumerate(batch.schema) if _has_ns(f.type)]
    if not todo:
        return batch
    columns = list(batch.columns)
    for i in todo:
        typ = columns[i].type
        ints = columns[i].cast(_swap(typ, lambda _: pa.int64())).to_pylist()  # maps as (key, value) pairs
        plain = [_convert(v, typ) for v in ints]
        columns[i] = pa.array(plain, _swap(typ, lambda t: pa.float64() if pa.types.is_duration(t) else pa.string()))
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _is_ns(typ: Any) -> bool:
    import pyarrow as pa

    return (pa.types.is_time64(typ) or pa.types.is_timestamp(typ) or pa.types.is_duration(typ)) and typ.unit == "ns"


def _children(typ: Any) -> list[Any]:
    return [typ.field(j).type for j in range(typ.num_fields)]


def _has_ns(typ: Any) -> bool:
    return _is_ns(typ) or any(_has_ns(t) for t in _children(typ))


def _swap(typ: Any, leaf: Any) -> Any:
    """`typ` with each nanosecond leaf replaced by `leaf(that type)`."""
    import pyarrow as pa

    if _is_ns(typ):
        return leaf(typ)
    if not _has_ns(typ):
        return typ
    if pa.types.is_map(typ):
        return pa.map_(_swap(typ.key_type, leaf), _swap(typ.item_type, leaf))
    if pa.types.is_struct(typ):
        return pa.struct([typ.field(j).with_type(_swap(typ.field(j).type, leaf)) for j in range(typ.num_fields)])
    if pa.types.is_fixed_size_list(typ):
        return pa.list_(typ.value_field.with_type(_swap(typ.value_type, leaf)), typ.list_size)
    if pa.types.is_large_list(typ):
        return pa.large_list(typ.value_field.with_type(_swap(typ.value_type, leaf)))
    if pa.types.is_list(typ):
        return pa.list_(typ.value_field.with_type(_swap(typ.value_type, leaf)))
    raise ValueError(f"a {typ} column cannot be read: nanosecond values inside it are not supported")


def _convert(value: Any, typ: Any) -> Any:
    """A value of the int64 form of `typ` (see `_swap`) as its plain form."""
    import pyarrow as pa

    if value is None:
        return None
    if _is_ns(typ):
        if pa.types.is_duration(typ):
            return value / 1_000_000_000
        if pa.types.is_time64(typ):
            return ns_time(value)
        return ns_timestamp(value, typ.tz)
    if not _has_ns(typ):
        return value
    if pa.types.is_map(typ):
        return [(_convert(k, typ.key_type), _convert(v, typ.item_type)) for k, v in value]
    if pa.types.is_struct(typ):
        return {f.name: _convert(value.get(f.name), f.type) for f in typ}
    return [_convert(v, typ.value_type) for v in value]


def ns_time(ns: int) -> str:
    """Nanoseconds since midnight as `datetime.time.isoformat` writes a time ("12:30:05", "12:30:05.000001"),
    with 9 fraction digits when the nanoseconds are not whole microseconds ("12:30:05.000000123")."""
    us, rem = divmod(ns, 1000)
    seconds, micro = divmod(us, 1_000_000)
    return _iso(dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro), rem)


def ns_timestamp(ns: int, tz: str | None = None) -> str:
    """Nanoseconds since the Unix epoch as `datetime.isoformat` writes the moment (in `tz`, an IANA name or a
    "+05:30" offset, with its offset; naive without one), with 9 fraction digits when the nanoseconds are not
    whole microseconds. ValueError for a time zone this machine does not know."""
    us, rem = divmod(ns, 1000)
    moment = _EPOCH + dt.timedelta(microseconds=us)
    if tz:
        moment = moment.replace(tzinfo=dt.timezone.utc).astimezone(_zone(tz))
    return _iso(moment, rem)


def _iso(value: dt.time | dt.datetime, rem: int) -> str:
    if not rem:
        return value.isoformat()
    return finer_fraction(value.isoformat(timespec="microseconds"), f"{rem:03d}")


def finer_fraction(iso: str, digits: str) -> str:
    """ISO 8601 text written to microseconds (`isoformat(timespec="microseconds")`) with `digits`, the fraction's
    digits past the sixth, put after the microseconds and before any offset."""
    cut = iso.index(".") + 7
    return f"{iso[:cut]}{digits}{iso[cut:]}"


@functools.lru_cache(maxsize=64)
def _zone(tz: str) -> dt.tzinfo:
    if m := _OFFSET.match(tz):
        sign = -1 if m[1] == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(m[2]), minutes=int(m[3])))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (no such zone in this machine's time zone database)") from None
