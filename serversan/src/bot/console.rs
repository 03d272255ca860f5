//! A console front end: the demo's chat in a terminal.
//!
//! Typed lines go to the same handlers Telegram updates reach, as a private
//! chat of one local user. Replies print as plain text, buttons as numbered
//! choices (type the number to press one), and charts are saved as PNG files.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::html::to_plain;
use super::reply::{Keyboard, Output, Photo};
use super::{ChatHandler, Input, Sender};

/// Drives `handler` from `input` lines until end of input or `/quit`,
/// writing what the user would see to `out`.
pub async fn run<H: ChatHandler, R: AsyncBufRead + Unpin>(
    handler: &H,
    user: Sender,
    input: R,
    out: &mut (dyn Write + Send),
    chart_dir: &Path,
) -> std::io::Result<()> {
    let mut lines = input.lines();
    let mut buttons: Vec<String> = Vec::new();
    let mut charts = 0usize;
    write!(out, "> ")?;
    out.flush()?;
    while let Some(line) = lines.next_line().await? {
        let line = line.trim();
        if line.is_empty() {
            write!(out, "> ")?;
            out.flush()?;
            continue;
        }
        if matches!(line, "/quit" | "/exit" | "quit" | "exit") {
            break;
        }
        let input = match line.parse::<usize>() {
            Ok(n) if (1..=buttons.len()).contains(&n) => Input::Button(buttons[n - 1].clone()),
            _ => Input::Text(line.to_owned()),
        };
        let outputs = handler.handle(&user, input).await;
        for output in outputs {
            match output {
                Output::Send(reply) | Output::Edit(reply) => {
                    writeln!(out, "{}", to_plain(&reply.text()))?;
                    show_buttons(out, &reply.keyboard, &mut buttons)?;
                }
                Output::Photo(photo) | Output::EditPhoto(photo) => {
                    charts += 1;
                    let path = save_chart(chart_dir, charts, &photo)?;
                    writeln!(out, "{}", to_plain(&photo.caption))?;
                    writeln!(out, "[chart saved to {}]", path.display())?;
                    show_buttons(out, &photo.keyboard, &mut buttons)?;
                }
                Output::Notice(text) => writeln!(out, "({text})")?,
            }
        }
        write!(out, "> ")?;
        out.flush()?;
    }
    writeln!(out)?;
    Ok(())
}

fn show_buttons(
    out: &mut (dyn Write + Send),
    keyboard: &Keyboard,
    buttons: &mut Vec<String>,
) -> std::io::Result<()> {
    if keyboard.is_empty() {
        return Ok(());
    }
    buttons.clear();
    for row in keyboard {
        let mut line = String::new();
        for b in row {
            buttons.push(b.action.encode());
            line.push_str(&format!("[{}] {}  ", buttons.len(), b.label));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    writeln!(out, "(type a number to press a button)")
}

fn save_chart(dir: &Path, n: usize, photo: &Photo) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    // The name comes from our own counter, never from user input.
    let path = dir.join(format!("chart-{n}.png"));
    std::fs::write(&path, &photo.png)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_plain_text() {
        assert_eq!(
            to_plain("<b>web-1</b> &lt;ok&gt; &amp; <code>x</code>"),
            "web-1 <ok> & x"
        );
    }
}
