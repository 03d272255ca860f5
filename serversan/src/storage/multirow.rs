//! Multi-row statements: items split into chunks of a few fixed lengths,
//! and the repeated SQL each chunk needs.
//!
//! Why fixed lengths: sqlx prepares every distinct statement text once per
//! connection and keeps it in a bounded cache. A multi-row statement sized
//! to each batch would prepare a new text for almost every batch; with a
//! handful of lengths a statement has a handful of texts, all cached.

/// Splits `items` into chunks whose lengths are in `sizes` (ascending,
/// starting with 1), largest first, each item in exactly one chunk.
pub(crate) fn chunks<'a, T>(
    mut items: &'a [T],
    sizes: &'static [usize],
) -> impl Iterator<Item = &'a [T]> + 'a {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let len = sizes
            .iter()
            .rev()
            .copied()
            .find(|&s| s <= items.len())
            .unwrap_or(1);
        let (chunk, rest) = items.split_at(len);
        items = rest;
        Some(chunk)
    })
}

/// `item` `count` times, joined by `separator`.
pub(crate) fn repeat(item: &str, separator: &str, count: usize) -> String {
    let mut out = String::with_capacity((item.len() + separator.len()) * count);
    for i in 0..count {
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(item);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_largest_first_and_cover_every_item_once() {
        const SIZES: [usize; 4] = [1, 4, 16, 64];
        let items: Vec<usize> = (0..87).collect();
        let lens: Vec<usize> = chunks(&items, &SIZES).map(<[usize]>::len).collect();
        assert_eq!(lens, [64, 16, 4, 1, 1, 1]);
        assert_eq!(
            chunks(&items, &SIZES)
                .flatten()
                .copied()
                .collect::<Vec<_>>(),
            items
        );
        assert_eq!(chunks::<usize>(&[], &SIZES).count(), 0);
    }

    #[test]
    fn repeat_joins() {
        assert_eq!(repeat("?", ", ", 3), "?, ?, ?");
        assert_eq!(repeat("(?)", " OR ", 1), "(?)");
        assert_eq!(repeat("?", ", ", 0), "");
    }
}
