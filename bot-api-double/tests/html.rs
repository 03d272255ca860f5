//! Telegram's HTML parse mode: what it accepts (and how it renders it) and
//! what it refuses, with its exact descriptions and byte offsets.

mod common;

use bot_api_double::{BareAmpersand, BotApiDouble, EntityKind, Options};
use common::{ok, refused, started_user};
use serde_json::{Value, json};

async fn html(double: &BotApiDouble, text: &str) -> Value {
    ok(
        double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": text, "parse_mode": "HTML" }),
    )
    .await
}

async fn html_refused(double: &BotApiDouble, text: &str, error: &str) {
    let description = format!("Bad Request: can't parse entities: {error}");
    refused(
        double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": text, "parse_mode": "HTML" }),
        400,
        &description,
    )
    .await;
}

#[tokio::test]
async fn every_supported_tag_renders_as_its_entity() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    let cases: [(&str, &str, Value); 16] = [
        ("<b>x</b>", "x", json!({"type": "bold"})),
        ("<strong>x</strong>", "x", json!({"type": "bold"})),
        ("<i>x</i>", "x", json!({"type": "italic"})),
        ("<em>x</em>", "x", json!({"type": "italic"})),
        ("<u>x</u>", "x", json!({"type": "underline"})),
        ("<ins>x</ins>", "x", json!({"type": "underline"})),
        ("<s>x</s>", "x", json!({"type": "strikethrough"})),
        ("<strike>x</strike>", "x", json!({"type": "strikethrough"})),
        ("<del>x</del>", "x", json!({"type": "strikethrough"})),
        (
            "<tg-spoiler>x</tg-spoiler>",
            "x",
            json!({"type": "spoiler"}),
        ),
        (
            "<span class=\"tg-spoiler\">x</span>",
            "x",
            json!({"type": "spoiler"}),
        ),
        ("<code>x</code>", "x", json!({"type": "code"})),
        ("<pre>x</pre>", "x", json!({"type": "pre"})),
        (
            "<blockquote>x</blockquote>",
            "x",
            json!({"type": "blockquote"}),
        ),
        (
            "<blockquote expandable>x</blockquote>",
            "x",
            json!({"type": "expandable_blockquote"}),
        ),
        (
            "<tg-emoji emoji-id=\"5368324170671202286\">x</tg-emoji>",
            "x",
            json!({"type": "custom_emoji", "custom_emoji_id": "5368324170671202286"}),
        ),
    ];
    for (source, text, entity) in cases {
        let message = html(&double, source).await;
        assert_eq!(message["text"], text, "{source}");
        let mut expected = entity.clone();
        expected["offset"] = json!(0);
        expected["length"] = json!(1);
        assert_eq!(message["entities"], json!([expected]), "{source}");
    }
}

#[tokio::test]
async fn links_code_blocks_nesting_and_entities_decode_like_telegram() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);

    let link = html(
        &double,
        "see <a href=\"https://example.com/a?b=1&amp;c=2\">docs</a>",
    )
    .await;
    assert_eq!(link["text"], "see docs");
    assert_eq!(
        link["entities"],
        json!([{"offset": 4, "length": 4, "type": "text_link", "url": "https://example.com/a?b=1&c=2"}])
    );

    let code = html(
        &double,
        "<pre><code class=\"language-bash\">curl -fsSL x | sudo bash</code></pre>",
    )
    .await;
    assert_eq!(code["text"], "curl -fsSL x | sudo bash");
    assert_eq!(
        code["entities"],
        json!([{"offset": 0, "length": 24, "type": "pre", "language": "bash"}])
    );

    let nested = html(
        &double,
        "<b>bold <i>both</i></b> &lt;tag&gt; &quot;q&quot; &#65;&#x42;",
    )
    .await;
    assert_eq!(nested["text"], "bold both <tag> \"q\" AB");
    assert_eq!(
        nested["entities"],
        json!([
            {"offset": 0, "length": 9, "type": "bold"},
            {"offset": 5, "length": 4, "type": "italic"},
        ])
    );

    // Offsets count UTF-16 code units: an emoji is two.
    let emoji = html(&double, "😀 <b>up</b>").await;
    assert_eq!(
        emoji["entities"],
        json!([{"offset": 3, "length": 2, "type": "bold"}])
    );

    // Tags are case-insensitive, a bare > is text, empty tags vanish,
    // and </> closes whatever is open.
    let loose = html(&double, "<B>a</B> 1 > 0 <i></i><u>z</>").await;
    assert_eq!(loose["text"], "a 1 > 0 z");
    assert_eq!(
        loose["entities"],
        json!([
            {"offset": 0, "length": 1, "type": "bold"},
            {"offset": 8, "length": 1, "type": "underline"},
        ])
    );

    // An invalid link is dropped, not refused.
    let bad_link = html(&double, "<a href=\"javascript:alert(1)\">x</a>").await;
    assert_eq!(bad_link["text"], "x");
    assert!(bad_link.get("entities").is_none(), "{bad_link}");

    let stored = double.last_message(1001).expect("recorded");
    assert_eq!(stored.source, "<a href=\"javascript:alert(1)\">x</a>");
    let code = &double.messages(1001)[1];
    assert_eq!(
        code.entities[0].kind,
        EntityKind::Pre {
            language: Some("bash".to_owned())
        }
    );
}

#[tokio::test]
async fn html_telegram_refuses_is_refused_with_its_description() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    let cases = [
        ("<p>hi</p>", "Unsupported start tag \"p\" at byte offset 0"),
        (
            "a <br/> b",
            "Unsupported start tag \"br/\" at byte offset 2",
        ),
        ("1 < 2", "Unsupported start tag \"\" at byte offset 2"),
        ("x<b", "Unclosed start tag at byte offset 1"),
        ("<b>x", "Can't find end tag corresponding to start tag b"),
        (
            "<b>x</i>",
            "Unmatched end tag at byte offset 4, expected \"</b>\", found \"</i>\"",
        ),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        (
            "<span>x</span>",
            "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0",
        ),
        (
            "<a href>x</a>",
            "Expected equal sign in declaration of an attribute of the tag \"a\" at byte offset 0",
        ),
        (
            "<a href=x!>y</a>",
            "Unexpected end of name token at byte offset 8",
        ),
        (
            "<a =\"x\">y</a>",
            "Empty attribute name in the tag \"a\" at byte offset 0",
        ),
        (
            "<tg-emoji emoji-id=\"x\">y</tg-emoji>",
            "Invalid custom emoji identifier specified",
        ),
        (
            "&#xD800;",
            "Text contains invalid Unicode characters after decoding HTML entities, check for \
             unmatched surrogate code units",
        ),
    ];
    for (source, error) in cases {
        html_refused(&double, source, error).await;
    }
    assert!(
        double.messages(1001).is_empty(),
        "nothing refused was stored"
    );
}

#[tokio::test]
async fn an_unescaped_ampersand_is_refused_by_default_and_literal_on_request() {
    let strict = BotApiDouble::start().await;
    started_user(&strict, 1001);
    html_refused(
        &strict,
        "x&y",
        "Unescaped \"&\" at byte offset 1: only &lt; &gt; &amp; &quot; and numeric entities are \
         recognised (Telegram would show it literally; the test double refuses it so unescaped \
         text is caught)",
    )
    .await;
    let refused_entity = strict.calls_to("sendMessage").len();
    assert_eq!(refused_entity, 1);
    // &nbsp; is no entity Telegram knows.
    let (status, _) = common::call(
        &strict,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "a&nbsp;b", "parse_mode": "HTML" }),
    )
    .await;
    assert_eq!(status, 400);
    // Plain text has no entities to parse.
    let plain = ok(
        &strict,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "x&y <b>" }),
    )
    .await;
    assert_eq!(plain["text"], "x&y <b>");

    let lenient = BotApiDouble::start_with(Options {
        bare_ampersand: BareAmpersand::Literal,
        ..Options::default()
    })
    .await;
    started_user(&lenient, 1001);
    let message = html(&lenient, "x&y &nbsp; &amp").await;
    assert_eq!(message["text"], "x&y &nbsp; &");
}

#[tokio::test]
async fn only_the_html_parse_mode_is_implemented() {
    let double = BotApiDouble::start().await;
    started_user(&double, 1001);
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "x", "parse_mode": "Shouting" }),
        400,
        "Bad Request: unsupported parse_mode",
    )
    .await;
    refused(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "*x*", "parse_mode": "MarkdownV2" }),
        400,
        "Bad Request: can't parse entities: the test double implements only the HTML parse mode",
    )
    .await;
    let lower = ok(
        &double,
        "sendMessage",
        json!({ "chat_id": 1001, "text": "<b>x</b>", "parse_mode": "html" }),
    )
    .await;
    assert_eq!(lower["entities"][0]["type"], "bold");
}
