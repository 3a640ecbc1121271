"""Planning one reminder's delivery: DM or group @mentions, per platform, within limits."""

from __future__ import annotations

import itertools

import pytest
from autopilot.channels.split import TextLimit, utf8_bytes, utf16_units
from autopilot.channels.webhooks import (
    DingTalkChannel,
    DiscordChannel,
    FeishuChannel,
    SlackChannel,
    TelegramChannel,
)
from autopilot.reminders.mentions import (
    DISCORD_MENTION_LIMIT,
    MAX_NAME_LENGTH,
    UNDOCUMENTED_MENTION_LIMIT,
    MentionPlanError,
    PlannedMessage,
    Recipient,
    limits_for,
    plan_delivery,
    short_name,
    supports_direct,
)
from hypothesis import given, settings
from hypothesis import strategies as st

TEMPLATE = "{mentions} 今晚 8 点前记得打卡"
ALL_TYPES = [
    "wecom",
    "dingtalk",
    "feishu",
    "slack",
    "discord",
    "telegram",
    "console",
    "file",
    "sns",
]


def group(plan: list[PlannedMessage]) -> list[PlannedMessage]:
    return [p for p in plan if p.kind == "group"]


def covered(plan: list[PlannedMessage]) -> list[str]:
    return [member for p in plan for member in p.member_ids]


# --------------------------------------------------------------------------- payload shapes


def test_wecom_text_uses_mentioned_lists_and_names_the_rest_in_text():
    plan = plan_delivery(
        "wecom",
        [
            Recipient("m1", "张三", platform_user_id="zhangsan"),
            Recipient("m2", "李四", mobile="13800001111"),
            Recipient("m3", "王五"),
            Recipient("m4", "赵六", platform_user_id="zhaoliu", mobile="13900002222"),
        ],
        TEMPLATE,
    )
    assert len(plan) == 1
    assert plan[0].payload == {
        "msgtype": "text",
        "text": {
            "content": "王五 今晚 8 点前记得打卡",
            "mentioned_list": ["zhangsan", "zhaoliu"],  # user id wins over mobile
            "mentioned_mobile_list": ["13800001111"],
        },
    }
    assert plan[0].mentioned == ("zhangsan", "13800001111", "zhaoliu")
    assert plan[0].member_ids == ("m1", "m2", "m3", "m4")


def test_wecom_markdown_mentions_in_text_and_mobiles_become_names():
    plan = plan_delivery(
        "wecom",
        [Recipient("m1", "张三", "zhangsan"), Recipient("m2", "李四", mobile="13800001111")],
        TEMPLATE,
        options={"msgtype": "markdown"},
    )
    assert plan[0].payload == {
        "msgtype": "markdown",
        "markdown": {"content": "<@zhangsan> 李四 今晚 8 点前记得打卡"},
    }
    assert plan[0].mentioned == ("zhangsan",)


def test_dingtalk_puts_at_fields_and_the_at_text_dingtalk_requires():
    plan = plan_delivery(
        "dingtalk",
        [
            Recipient("m1", "张三", "user123"),
            Recipient("m2", "李四", mobile="13800001111"),
            Recipient("m3", "王五"),
        ],
        TEMPLATE,
    )
    assert plan[0].payload == {
        "msgtype": "text",
        "text": {"content": "@user123 @13800001111 王五 今晚 8 点前记得打卡"},
        "at": {"atUserIds": ["user123"], "atMobiles": ["13800001111"], "isAtAll": False},
    }
    markdown = plan_delivery(
        "dingtalk",
        [Recipient("m1", "张三", "u1")],
        "提醒\n{mentions} 快来",
        options={"msgtype": "markdown"},
    )[0].payload
    assert markdown["markdown"] == {"title": "提醒", "text": "提醒\n@u1 快来"}
    assert markdown["at"]["atUserIds"] == ["u1"]


def test_feishu_at_tags_with_escaped_names():
    plan = plan_delivery(
        "feishu",
        [Recipient("m1", "张<三>", "ou_abc"), Recipient("m2", '<at user_id="all">x</at>')],
        TEMPLATE,
    )
    text = (
        '<at user_id="ou_abc">张&lt;三&gt;</at> &lt;at user_id="all"&gt;x&lt;/at&gt; '
        "今晚 8 点前记得打卡"
    )
    assert plan[0].payload == {"msg_type": "text", "content": {"text": text}}
    assert plan[0].mentioned == ("ou_abc",)


def test_slack_user_mentions_and_escaped_plain_names():
    plan = plan_delivery(
        "slack", [Recipient("m1", "Ann", "U024BE7LH"), Recipient("m2", "<!channel>")], TEMPLATE
    )
    assert plan[0].payload == {"text": "<@U024BE7LH> &lt;!channel&gt; 今晚 8 点前记得打卡"}


def test_discord_mentions_allow_exactly_the_batch():
    plan = plan_delivery(
        "discord",
        [
            Recipient("m1", "Ann", "80351110224678912"),
            Recipient("m2", "Bob"),
            Recipient("m3", "x", "not-a-snowflake"),
        ],
        "Hey {mentions}, check in!",
    )
    assert plan[0].payload == {
        "content": "Hey <@80351110224678912> Bob x, check in!",
        "allowed_mentions": {"parse": [], "users": ["80351110224678912"]},
    }


def test_telegram_text_mention_entities_count_utf16_offsets():
    plan = plan_delivery(
        "telegram",
        [Recipient("m1", "😀阿明", "111"), Recipient("m2", "无号"), Recipient("m3", "Bo", "222")],
        "提醒：{mentions} 快来",
    )
    text = "提醒：😀阿明 无号 Bo 快来"
    assert plan[0].payload == {
        "text": text,
        "entities": [
            {"type": "text_mention", "offset": 3, "length": 4, "user": {"id": 111}},
            {"type": "text_mention", "offset": 11, "length": 2, "user": {"id": 222}},
        ],
    }
    for entity in plan[0].payload["entities"]:
        units = text.encode("utf-16-le")
        start, end = entity["offset"] * 2, (entity["offset"] + entity["length"]) * 2
        assert units[start:end].decode("utf-16-le") in ("😀阿明", "Bo")


def test_telegram_parse_modes_use_links():
    people = [Recipient("m1", "A<b>", "111"), Recipient("m2", "c_d")]
    html = plan_delivery("telegram", people, TEMPLATE, options={"parse_mode": "HTML"})[0]
    assert html.payload == {
        "text": '<a href="tg://user?id=111">A&lt;b&gt;</a> c_d 今晚 8 点前记得打卡',
        "parse_mode": "HTML",
    }
    v2 = plan_delivery("telegram", people, "{mentions}", options={"parse_mode": "MarkdownV2"})[0]
    assert v2.text == "[A<b\\>](tg://user?id=111) c\\_d"


def test_local_channels_name_members_in_plain_text():
    plan = plan_delivery("console", [Recipient("m1", "张三", "x")], TEMPLATE)
    assert plan[0].payload == {"text": "@张三 今晚 8 点前记得打卡"}
    assert plan[0].mentioned == ()


def test_template_without_placeholder_gets_mentions_on_their_own_line():
    plan = plan_delivery("slack", [Recipient("m1", "Ann", "U1")], "今晚打卡")
    assert plan[0].text == "<@U1>\n今晚打卡"
    # WeCom shows list mentions itself: no empty first line.
    plan = plan_delivery("wecom", [Recipient("m1", "Ann", "u1")], "今晚打卡")
    assert plan[0].text == "今晚打卡"


def test_placeholder_twice_is_refused():
    with pytest.raises(MentionPlanError, match="at most once"):
        plan_delivery("slack", [Recipient("m1", "A")], "{mentions} {mentions}")


# --------------------------------------------------------------------------- DM vs group


@pytest.mark.parametrize("channel_type", ALL_TYPES)
def test_dm_only_where_the_channel_class_supports_it(channel_type):
    people = [
        Recipient("m1", "Ann", "111", dm_address="111", direct_text="Ann, 还差 1 次打卡"),
        Recipient("m2", "Bob", "222"),
    ]
    plan = plan_delivery(channel_type, people, TEMPLATE)
    if channel_type in ("wecom", "dingtalk", "feishu"):
        assert not supports_direct(channel_type)
        assert [p.kind for p in plan] == ["group"]
        assert plan[0].member_ids == ("m1", "m2")
    else:
        assert supports_direct(channel_type)
        assert plan[0] == PlannedMessage(
            "direct", "Ann, 还差 1 次打卡", (people[0],), address="111"
        )
        assert [p.kind for p in plan[1:]] == ["group"]
        assert plan[1].member_ids == ("m2",)


def test_dm_without_its_own_text_gets_the_template_with_the_name():
    plan = plan_delivery(
        "telegram",
        [Recipient("m1", "A<b>", dm_address="42")],
        "{mentions}，今晚开奖",
        options={"parse_mode": "HTML"},
    )
    assert plan == [
        PlannedMessage("direct", "A&lt;b&gt;，今晚开奖", plan[0].recipients, address="42")
    ]
    plan = plan_delivery("console", [Recipient("m1", "Ann", dm_address="ann")], "今晚开奖")
    assert plan[0].text == "今晚开奖"


def test_blank_dm_address_means_group():
    plan = plan_delivery("slack", [Recipient("m1", "Ann", "U1", dm_address="  ")], TEMPLATE)
    assert [p.kind for p in plan] == ["group"]


# --------------------------------------------------------------------------- limits


def test_limits_are_the_channels_own():
    assert limits_for("wecom").text == TextLimit(2048, utf8_bytes, "bytes")
    assert limits_for("wecom", {"msgtype": "markdown"}).text == TextLimit(4096, utf8_bytes, "bytes")
    assert limits_for("dingtalk").text is DingTalkChannel.LIMIT
    assert limits_for("feishu").text is FeishuChannel.LIMIT
    assert limits_for("slack").text is SlackChannel.TEXT_LIMIT
    assert limits_for("discord").text is DiscordChannel.CONTENT_LIMIT
    assert limits_for("discord", {"msgtype": "embed"}).text is DiscordChannel.CONTENT_LIMIT
    assert limits_for("telegram").text is TelegramChannel.LIMIT
    assert limits_for("discord").max_mentions == DISCORD_MENTION_LIMIT == 100
    assert limits_for("wecom").max_mentions == UNDOCUMENTED_MENTION_LIMIT
    assert limits_for("console").text is None and limits_for("console").max_mentions is None
    with pytest.raises(ValueError):
        limits_for("pager")


def test_discord_batches_at_100_mentions():
    people = [Recipient(f"m{i}", f"u{i}", str(10**17 + i)) for i in range(250)]
    plan = plan_delivery("discord", people, "{mentions}")
    # 250 mentions of 21 characters fit 2,000 characters 90 at a time, under the 100 cap.
    assert [len(p.recipients) for p in plan] == [90, 90, 70]
    for message in plan:
        assert len(message.payload["content"]) <= 2000
        assert message.payload["allowed_mentions"]["users"] == list(message.mentioned)
    short = [Recipient(f"m{i}", "x", str(i + 1)) for i in range(250)]  # <@1> … <@250>
    plan = plan_delivery("discord", short, "{mentions}")
    assert [len(p.recipients) for p in plan] == [100, 100, 50]


def test_wecom_batches_at_the_mention_limit_and_plain_names_at_the_byte_limit():
    ids = [Recipient(f"m{i}", "名字", f"user{i}") for i in range(120)]
    plan = plan_delivery("wecom", ids, TEMPLATE)
    assert [len(p.payload["text"]["mentioned_list"]) for p in plan] == [50, 50, 20]
    # Long Chinese names without ids: 30 characters = 90 bytes + 1 separator each.
    names = [Recipient(f"n{i}", "长" * 30) for i in range(60)]
    plan = plan_delivery("wecom", names, TEMPLATE)
    template_bytes = utf8_bytes(TEMPLATE.replace("{mentions}", ""))
    per_message = (2048 - template_bytes + 1) // 91
    assert [len(p.recipients) for p in plan] == [per_message, per_message, 60 - 2 * per_message]
    assert all(utf8_bytes(p.text) <= 2048 for p in plan)
    # One more name would not have fitted: the cut is as late as possible.
    first = plan[0]
    assert utf8_bytes(first.text) + 91 > 2048


def test_long_chinese_names_are_shortened_in_mentions():
    name = "很长的中文名字" * 20
    assert len(short_name(name)) == MAX_NAME_LENGTH and short_name(name).endswith("…")
    assert short_name("  张\n三  ") == "张 三"
    plan = plan_delivery("feishu", [Recipient("m1", name, "ou_1")], "{mentions}")
    assert plan[0].text == f'<at user_id="ou_1">{short_name(name)}</at>'


def test_max_mentions_lowers_the_limit():
    people = [Recipient(f"m{i}", "x", f"U{i}") for i in range(7)]
    plan = plan_delivery("slack", people, "{mentions}", max_mentions=3)
    assert [p.member_ids for p in plan] == [
        ("m0", "m1", "m2"),
        ("m3", "m4", "m5"),
        ("m6",),
    ]
    # Local channels notify nobody: a mention limit does not batch them.
    plan = plan_delivery("console", people, "{mentions}", max_mentions=3)
    assert [len(p.recipients) for p in plan] == [7]
    with pytest.raises(MentionPlanError):
        plan_delivery("slack", people, "{mentions}", max_mentions=0)


def test_template_too_long_for_one_mention_is_refused():
    template = "提" * 682 + "{mentions}"  # 2,046 bytes: no room for "@x" and more
    with pytest.raises(MentionPlanError, match="shorten the template"):
        plan_delivery("dingtalk", [Recipient("m1", "x", "u" * 20_000)], template)
    # Within the limit it is planned.
    assert plan_delivery("wecom", [Recipient("m1", "x", "u1")], template)[0].text == "提" * 682


def test_duplicate_member_is_planned_once_at_first_place():
    a = Recipient("m1", "Ann", "U1")
    plan = plan_delivery(
        "slack", [a, Recipient("m2", "Bob"), Recipient("m1", "Ann again", "U9")], "{mentions}"
    )
    assert covered(plan) == ["m1", "m2"]
    assert plan[0].text == "<@U1> Bob"


def test_ten_thousand_recipients_plan_quickly_on_an_unlimited_channel():
    people = [Recipient(f"m{i}", f"成员{i}") for i in range(10_000)]
    plan = plan_delivery("file", people, TEMPLATE)
    assert len(plan) == 1 and len(plan[0].recipients) == 10_000


# --------------------------------------------------------------------------- property


names = st.text(
    alphabet=st.sampled_from(list("张三李四王五赵六钱七孙八😀abc <>&_*[]\n")),
    min_size=0,
    max_size=60,
)
recipients = st.lists(
    st.builds(
        Recipient,
        member_id=st.sampled_from([f"m{i}" for i in range(80)]),
        display_name=names,
        platform_user_id=st.one_of(
            st.none(), st.integers(1, 10**18).map(str), st.sampled_from(["ou_x", "U1", "user"])
        ),
        mobile=st.one_of(st.none(), st.just("13800001111")),
        dm_address=st.one_of(st.none(), st.just("chat1")),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(
    channel_type=st.sampled_from(ALL_TYPES),
    people=recipients,
    template=st.sampled_from([TEMPLATE, "{mentions}", "长" * 600 + "{mentions}", "提醒"]),
    cap=st.one_of(st.none(), st.integers(1, 7)),
)
def test_every_recipient_exactly_once_and_every_message_within_limits(
    channel_type, people, template, cap
):
    plan = plan_delivery(channel_type, people, template, max_mentions=cap)
    distinct = list(dict.fromkeys(r.member_id for r in people))
    assert sorted(covered(plan)) == sorted(distinct)  # none lost, none twice
    limits = limits_for(channel_type)
    order = {member: index for index, member in enumerate(distinct)}
    mentioned_everywhere: list[str] = []
    for message in plan:
        ranks = [order[m] for m in message.member_ids]
        assert ranks == sorted(ranks)  # input order inside a message
        if message.kind == "direct":
            assert len(message.recipients) == 1 and message.address
            continue
        if limits.text is not None:
            assert limits.text.fits(message.text)
        if limits.max_mentions is not None:
            assert len(message.mentioned) <= min(limits.max_mentions, cap or limits.max_mentions)
        mentioned_everywhere += [
            r.member_id for r in message.recipients if (r.platform_user_id or r.mobile)
        ]
    assert len(mentioned_everywhere) == len(set(mentioned_everywhere))
    # Groups follow input order: each batch starts after the previous one ends.
    groups = group(plan)
    for earlier, later in itertools.pairwise(groups):
        assert order[earlier.member_ids[-1]] < order[later.member_ids[0]]
        # As few batches as fit: the next recipient would not have fitted the earlier one.
        grown = plan_delivery(
            channel_type, [*earlier.recipients, later.recipients[0]], template, max_mentions=cap
        )
        assert len(group(grown)) == 2


def test_measures_match_the_channels():
    assert DiscordChannel.CONTENT_LIMIT.measure is utf16_units


@pytest.mark.parametrize(
    ("template", "content"),
    [
        ("{mentions} 今天还没打卡哦～", "今天还没打卡哦～"),
        ("你好 {mentions}，今天还没打卡", "你好，今天还没打卡"),
        ("Hi {mentions} there", "Hi there"),
    ],
)
def test_wecom_text_closes_the_gap_the_mentions_leave(template: str, content: str) -> None:
    # WeCom notifies through mentioned_list: nobody is named in the text itself.
    (message,) = plan_delivery("wecom", [Recipient("m", "张三", "zhangsan")], template)
    assert message.payload["text"] == {"content": content, "mentioned_list": ["zhangsan"]}
