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

/// Splits `items` into chunks of at most the largest of `sizes`
/// (ascending), each padded to the smallest size that holds it by
/// repeating its last item. Only for statements that a repeated item does
/// not change: IN lists, `UNION ALL` branches read into a map, deletes,
/// and upserts of the same row to the same values.
pub(crate) fn padded<'a, T: Copy>(
    items: &'a [T],
    sizes: &'static [usize],
) -> impl Iterator<Item = Vec<T>> + 'a {
    let largest = sizes.last().copied().unwrap_or(1);
    items.chunks(largest).map(move |chunk| {
        let len = sizes
            .iter()
            .copied()
            .find(|&s| s >= chunk.len())
            .unwrap_or(chunk.len());
        let mut padded = chunk.to_vec();
        if let Some(&last) = chunk.last() {
            padded.resize(len, last);
        }
        padded
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
    fn padded_chunks_have_a_fixed_length_and_repeat_the_last_item() {
        const SIZES: [usize; 4] = [1, 4, 16, 64];
        let lens = |n: usize| {
            let items: Vec<usize> = (0..n).collect();
            padded(&items, &SIZES).map(|c| c.len()).collect::<Vec<_>>()
        };
        assert_eq!(lens(0), Vec::<usize>::new());
        assert_eq!(lens(1), [1]);
        assert_eq!(lens(2), [4]);
        assert_eq!(lens(17), [64]);
        assert_eq!(lens(130), [64, 64, 4]);
        let chunk = padded(&[7, 8], &SIZES).next().expect("a chunk");
        assert_eq!(chunk, [7, 8, 8, 8]);
        let items: Vec<usize> = (0..130).collect();
        let mut seen: Vec<usize> = padded(&items, &SIZES).flatten().collect();
        seen.dedup();
        assert_eq!(
            seen, items,
            "every item, in order, the padding only repeats"
        );
    }

    #[test]
    fn repeat_joins() {
        assert_eq!(repeat("?", ", ", 3), "?, ?, ?");
        assert_eq!(repeat("(?)", " OR ", 1), "(?)");
        assert_eq!(repeat("?", ", ", 0), "");
    }
}
