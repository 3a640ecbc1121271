"""Coupon code pools of lotteries: parsing an upload, storing it, counting, handing out.

Ops upload the codes of a pool (``autopilot lottery codes upload``); a draw whose
prize tier names the pool (``coupon_pool``) gives each winner one code
(:func:`autopilot.lottery.prizes.assign_coupon_codes` decides which, the lottery
service records it with :meth:`CouponPools.give`).

**Items** (LotteryTable), one per code:

* ``pk = POOL#<community>#<pool>``, ``sk = CODE#<seq:08d>`` — ``code``, ``uploaded_at``
  and, once given, ``given_to`` (the payout's ref) and ``given_at``. ``seq`` is the
  code's place in the pool (upload order, ``1..``): a Query of the partition reads
  the codes in *pool order*, the order :func:`assign_coupon_codes` takes them in.
* ``pk = POOL#<community>#<pool>``, ``sk = UPLOAD`` — the lease of the upload in
  progress (outside the ``CODE#`` range, so no code Query ever sees it).

**Upload rules** (:func:`parse_codes`): one code per line, UTF-8; a final newline
and Windows line ends (CRLF) are fine, and a UTF-8 byte order mark at the start
of the file (spreadsheet exports write one) is ignored. Refused, with the line
number, and then *nothing* is written: a blank line, a code with surrounding
whitespace (``"ABC "`` would be shown to a member as is), a code longer than
:data:`MAX_CODE_CHARS`, a control or format character (tab, zero-width space,
bidi overrides...), a space other than the plain one, a line that is not UTF-8.
A code repeated in the file is kept once (its first line).

**Idempotent, never overwriting** (:meth:`CouponPools.upload`): the codes already
in the pool are read first (Query pages) and skipped, so uploading the same file
again adds nothing, and an upload that crashed half-way is finished by running it
again. New codes get the sequence numbers after the pool's last one and are
written with ``BatchWriteItem`` (25 per request; unprocessed items are retried
with back-off). ``BatchWriteItem`` cannot be conditional, so an upload first takes
the pool's ``UPLOAD`` lease (a conditional put): two uploads to one pool never run
at once, so they can neither write the same sequence number (which would replace
a code, and erase whom it was given to) nor both add the same new code.
"""

from __future__ import annotations

import time
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.models import Model

from autopilot.dynamo import bind_table
from autopilot.errors import AutopilotError
from autopilot.timeutil import iso_utc

MAX_CODE_CHARS = 128
"""The longest code accepted (characters)."""
MAX_UPLOAD_LINES = 200_000
"""The most lines one upload file may have (split a larger pool into several files)."""
MAX_UPLOAD_BYTES = 32 * 2**20
"""The largest upload file accepted (bytes)."""
MAX_SEQ = 99_999_999
"""The last sequence number of a pool (``CODE#<seq:08d>`` keeps byte order = pool order)."""
UPLOAD_LEASE = timedelta(minutes=10)
"""How long an upload holds its pool; a crashed upload's lease expires after this."""
BATCH_SIZE = 25  # BatchWriteItem's limit
MAX_PROBLEMS_SHOWN = 20
_BATCH_RETRIES = 8
_BOM = "\ufeff"


class CouponCodeError(AutopilotError, ValueError):
    """An upload the pool refuses; the message says what is wrong (and on which lines)."""


class PoolBusy(AutopilotError):
    """Another upload to the same pool holds its lease."""


def pool_pk(community_id: str, pool_id: str) -> str:
    """The partition of one coupon pool."""
    return f"POOL#{community_id}#{pool_id}"


def code_sk(seq: int) -> str:
    """The sort key of the pool's ``seq``-th code (zero-padded: byte order = pool order)."""
    return f"CODE#{seq:08d}"


CODE_PREFIX = "CODE#"
UPLOAD_SK = "UPLOAD"


# -- parsing (pure) ---------------------------------------------------------------------------


def code_problem(code: str) -> str | None:
    """Why ``code`` cannot be a coupon code (None: it can). See the module docstring."""
    if not code.strip():
        return "blank line (one code per line; remove empty lines)"
    if code != code.strip():
        return f"{_shown(code)} has spaces around it (they would be shown to the winner)"
    if len(code) > MAX_CODE_CHARS:
        return f"the code is {len(code)} characters long; at most {MAX_CODE_CHARS} are accepted"
    for ch in code:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or (
            category == "Zs" and ch != " "
        ):
            name = unicodedata.name(ch, "unnamed")
            return (
                f"{_shown(code)} contains U+{ord(ch):04X} ({name.lower()}): control, format "
                "and special space characters are refused"
            )
    return None


def _shown(code: str) -> str:
    text = code if len(code) <= 40 else code[:40] + "..."
    return ascii(text) if not text.isprintable() else repr(text)


@dataclass(frozen=True)
class ParsedCodes:
    """An upload file read by :func:`parse_codes`.

    ``codes`` are the distinct codes in file order; ``repeated_lines`` the line
    numbers whose code appeared earlier in the file (kept once); ``problems``
    ``(line, message)`` for every refused line (an upload with problems writes
    nothing).
    """

    codes: tuple[str, ...]
    repeated_lines: tuple[int, ...] = ()
    problems: tuple[tuple[int, str], ...] = ()

    @property
    def ok(self) -> bool:
        """True when the file can be uploaded (no problems and at least one code)."""
        return not self.problems and bool(self.codes)

    def describe_problems(self, source: str) -> list[str]:
        """``source:line: message`` lines (at most :data:`MAX_PROBLEMS_SHOWN`, then a count)."""
        lines = [f"{source}:{line}: {message}" for line, message in self.problems]
        if len(lines) > MAX_PROBLEMS_SHOWN:
            hidden = len(lines) - MAX_PROBLEMS_SHOWN
            lines = [*lines[:MAX_PROBLEMS_SHOWN], f"{source}: ... and {hidden} more problem(s)"]
        return lines


def parse_codes(data: bytes) -> ParsedCodes:
    """Read an upload file (bytes): distinct codes in file order, repeats, refused lines.

    The rules are in the module docstring. An empty file is a problem ("no codes");
    so is a file over :data:`MAX_UPLOAD_BYTES` or :data:`MAX_UPLOAD_LINES` lines.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        return ParsedCodes(
            (), (), ((0, f"the file is {len(data)} bytes; at most {MAX_UPLOAD_BYTES} per upload"),)
        )
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the newline that ends the last line does not start another
    if len(raw_lines) > MAX_UPLOAD_LINES:
        return ParsedCodes(
            (),
            (),
            ((0, f"the file has {len(raw_lines)} lines; at most {MAX_UPLOAD_LINES} per upload"),),
        )
    seen: set[str] = set()
    codes: list[str] = []
    repeated: list[int] = []
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(raw_lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append((number, "not UTF-8 text"))
            continue
        if number == 1 and text.startswith(_BOM):
            text = text[1:]
        problem = code_problem(text)
        if problem is not None:
            problems.append((number, problem))
        elif text in seen:
            repeated.append(number)
        else:
            seen.add(text)
            codes.append(text)
    if not raw_lines:
        problems.append((0, "the file has no codes"))
    return ParsedCodes(tuple(codes), tuple(repeated), tuple(problems))


# -- the store --------------------------------------------------------------------------------


class CouponCodeItem(Model):
    """One code of a pool (``sk = CODE#<seq:08d>``)."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    code = UnicodeAttribute()
    uploaded_at = UnicodeAttribute(null=True)
    given_to = UnicodeAttribute(null=True)
    given_at = UnicodeAttribute(null=True)

    @property
    def seq(self) -> int:
        """The code's place in the pool (1-based upload order)."""
        return int(self.sk[len(CODE_PREFIX) :])


class PoolUploadItem(Model):
    """The lease of the upload in progress to a pool (``sk = UPLOAD``)."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=UPLOAD_SK)
    holder = UnicodeAttribute()
    lease_until = UnicodeAttribute()


@dataclass(frozen=True)
class PoolCode:
    """An unused code and its place in the pool."""

    seq: int
    code: str


@dataclass(frozen=True)
class PoolStatus:
    """How many codes a pool has, has given and has left."""

    community_id: str
    pool_id: str
    total: int
    given: int

    @property
    def unused(self) -> int:
        """Codes not given to anyone yet."""
        return self.total - self.given

    def to_json(self) -> dict[str, object]:
        """The status as a JSON document."""
        return {
            "community": self.community_id,
            "pool": self.pool_id,
            "total": self.total,
            "given": self.given,
            "unused": self.unused,
        }


@dataclass(frozen=True)
class UploadResult:
    """What an upload did: ``added`` new codes (first and last seq), ``already`` codes
    that were in the pool before, ``repeated_lines`` lines repeating an earlier line."""

    added: int
    already: int
    repeated_lines: tuple[int, ...] = ()
    first_seq: int | None = None
    last_seq: int | None = None
    status: PoolStatus | None = field(default=None, compare=False)


class CouponPools:
    """Coupon pools in the lottery table: upload, status, unused codes, give one."""

    def __init__(self, table_name: str, region: str):
        bind_table(table_name, CouponCodeItem, PoolUploadItem, region=region)

    # -- reading ----------------------------------------------------------------------------

    def codes(self, community_id: str, pool_id: str) -> Iterator[CouponCodeItem]:
        """Every code of the pool in pool order (Query pages, never a Scan)."""
        return CouponCodeItem.query(
            pool_pk(community_id, pool_id),
            CouponCodeItem.sk.startswith(CODE_PREFIX),
            consistent_read=True,
        )

    def status(self, community_id: str, pool_id: str) -> PoolStatus:
        """Total, given and unused counts of the pool (an unknown pool has 0 of each)."""
        total = given = 0
        for item in CouponCodeItem.query(
            pool_pk(community_id, pool_id),
            CouponCodeItem.sk.startswith(CODE_PREFIX),
            consistent_read=True,
            attributes_to_get=["sk", "given_to"],
        ):
            total += 1
            given += item.given_to is not None
        return PoolStatus(community_id, pool_id, total, given)

    def unused(
        self, community_id: str, pool_id: str, limit: int, *, after_seq: int = 0
    ) -> list[PoolCode]:
        """Up to ``limit`` codes not given yet, in pool order, after ``after_seq``.

        Reads Query pages until it has ``limit`` codes or the pool ends (the filter
        runs after each page is read, so the pages read grow with the given codes
        before the first unused one, never with the pool's size beyond ``limit``).
        """
        if limit <= 0:
            return []
        found: list[PoolCode] = []
        for item in CouponCodeItem.query(
            pool_pk(community_id, pool_id),
            CouponCodeItem.sk.between(code_sk(after_seq + 1), code_sk(MAX_SEQ)),
            filter_condition=CouponCodeItem.given_to.does_not_exist(),
            consistent_read=True,
            page_size=max(limit, BATCH_SIZE),
        ):
            found.append(PoolCode(item.seq, item.code))
            if len(found) >= limit:
                break
        return found

    # -- writing ----------------------------------------------------------------------------

    def give(self, community_id: str, pool_id: str, seq: int, ref: str, *, at: datetime) -> bool:
        """Record code ``seq`` as given to payout ``ref``; False if it was already given
        (to anyone, even to ``ref``: the caller reads the code's holder to tell) or
        does not exist. Never gives one code twice (conditional update)."""
        item = CouponCodeItem(pool_pk(community_id, pool_id), code_sk(seq))
        try:
            item.update(
                actions=[
                    CouponCodeItem.given_to.set(ref),
                    CouponCodeItem.given_at.set(iso_utc(at)),
                ],
                condition=CouponCodeItem.pk.exists() & CouponCodeItem.given_to.does_not_exist(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def upload(
        self, community_id: str, pool_id: str, parsed: ParsedCodes, *, now: datetime
    ) -> UploadResult:
        """Add the parsed codes not yet in the pool (see the module docstring).

        Raises :class:`CouponCodeError` for a file with problems (nothing written),
        :class:`PoolBusy` while another upload holds the pool.
        """
        if not parsed.ok:
            first = parsed.problems[0] if parsed.problems else (0, "the file has no codes")
            raise CouponCodeError(f"line {first[0]}: {first[1]}")
        holder = uuid.uuid4().hex
        self._lease(community_id, pool_id, holder, now)
        try:
            existing: set[str] = set()
            last_seq = 0
            for item in self.codes(community_id, pool_id):
                existing.add(item.code)
                last_seq = max(last_seq, item.seq)
            new = [code for code in parsed.codes if code not in existing]
            if last_seq + len(new) > MAX_SEQ:
                raise CouponCodeError(
                    f"pool {pool_id!r} would hold more than {MAX_SEQ} codes; use a new pool"
                )
            uploaded_at = iso_utc(now)
            items = [
                CouponCodeItem(
                    pool_pk(community_id, pool_id),
                    code_sk(last_seq + offset),
                    code=code,
                    uploaded_at=uploaded_at,
                )
                for offset, code in enumerate(new, start=1)
            ]
            for start in range(0, len(items), BATCH_SIZE):
                _batch_put(items[start : start + BATCH_SIZE])
        finally:
            self._release(community_id, pool_id, holder)
        total = last_seq + len(new)
        return UploadResult(
            added=len(new),
            already=len(parsed.codes) - len(new),
            repeated_lines=parsed.repeated_lines,
            first_seq=last_seq + 1 if new else None,
            last_seq=total if new else None,
        )

    def _lease(self, community_id: str, pool_id: str, holder: str, now: datetime) -> None:
        lease = PoolUploadItem(
            pool_pk(community_id, pool_id),
            UPLOAD_SK,
            holder=holder,
            lease_until=iso_utc(now + UPLOAD_LEASE),
        )
        try:
            # ISO instants in UTC with a fixed format compare as text.
            lease.save(
                condition=PoolUploadItem.pk.does_not_exist()
                | (PoolUploadItem.lease_until < iso_utc(now))
            )
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            current = _get_lease(community_id, pool_id)
            until = current.lease_until if current is not None else "soon"
            raise PoolBusy(
                f"another upload to pool {pool_id!r} of {community_id!r} is running "
                f"(its lease ends {until}); try again when it has finished"
            ) from None

    def _release(self, community_id: str, pool_id: str, holder: str) -> None:
        try:
            PoolUploadItem(pool_pk(community_id, pool_id), UPLOAD_SK).delete(
                condition=PoolUploadItem.holder == holder
            )
        except DeleteError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            # Our lease expired and another upload took it: that one releases it.


def _get_lease(community_id: str, pool_id: str) -> PoolUploadItem | None:
    try:
        return PoolUploadItem.get(pool_pk(community_id, pool_id), UPLOAD_SK, consistent_read=True)
    except PoolUploadItem.DoesNotExist:
        return None


def _batch_put(items: Iterable[CouponCodeItem]) -> None:
    """One ``BatchWriteItem`` of up to 25 puts, retrying unprocessed items with back-off."""
    connection = CouponCodeItem._get_connection()
    pending = [item.serialize() for item in items]
    for attempt in range(_BATCH_RETRIES + 1):
        answer = connection.batch_write_item(put_items=pending)
        unprocessed = (answer or {}).get("UnprocessedItems", {}).get(CouponCodeItem.Meta.table_name)
        if not unprocessed:
            return
        pending = [request["PutRequest"]["Item"] for request in unprocessed]
        if attempt < _BATCH_RETRIES:
            time.sleep(min(2.0, 0.05 * 2**attempt))  # DynamoDB asks us to slow down
    raise CouponCodeError(
        f"DynamoDB left {len(pending)} code(s) unwritten after {_BATCH_RETRIES} retries; "
        "run the same upload again to finish it"
    )
