//! Text helpers every message uses: "did you mean" and cutting long values.

use std::borrow::Cow;

/// The candidate closest to `name`, if close enough to be a typo: at most
/// one edit (a swap of two neighbours counts as one) per three characters,
/// and at least one allowed. The one rule for every "did you mean".
pub fn suggest<'k>(name: &str, candidates: &[&'k str]) -> Option<&'k str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), *c))
        .filter(|(d, c)| *d <= (c.chars().count().max(name.chars().count()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

/// `text`, or its first `max_chars` characters and a note saying how long
/// it is: messages stay one readable line however long the input.
pub fn cut(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!(
            "{}… ({} characters in all)",
            &text[..end],
            text.chars().count()
        )),
    }
}
