//! Token vocabularies of the Arbitor core and its audio path.
//!
//! Both vocabularies start with 256 "payload" ids and share the same block of
//! 33 control tokens right after them:
//!
//! | ids | text vocabulary ([`TEXT_VOCAB`] = 297) | audio vocabulary ([`AUDIO_VOCAB`] = 289) |
//! | --- | --- | --- |
//! | `0..256` | the 256 byte values (raw UTF-8 bytes) | the 256 entries of the audio VQ codebook |
//! | `256..289` | the 33 [control tokens](CONTROL_TOKENS) | the same 33 control tokens |
//! | `289..297` | the 8 [routing tokens](ROUTE_TOKENS) that hand a position to an output head | — |
//!
//! ```
//! use arbitor_models::vocab::*;
//!
//! assert_eq!(TEXT_VOCAB, 297);
//! assert_eq!(AUDIO_VOCAB, 289);
//! assert_eq!(PAD, 256);
//! assert_eq!(ROUTE_TOKENS[1], ("<route:video>", 290));
//! ```

/// Payload ids: byte values in the text vocabulary, codebook codes in the audio one.
pub const PAYLOAD_TOKENS: usize = 256;

/// The control tokens shared by both vocabularies, `(name, id)`; ids
/// `256..289`. The last 19 are reserved (never produced by the tokenizer).
pub const CONTROL_TOKENS: [(&str, usize); 33] = [
    ("<pad>", 256),
    ("<bos>", 257),
    ("<eos>", 258),
    ("<sep>", 259),
    ("<mask>", 260),
    ("<unk>", 261),
    ("<text>", 262),
    ("</text>", 263),
    ("<audio>", 264),
    ("</audio>", 265),
    ("<video>", 266),
    ("</video>", 267),
    ("<image>", 268),
    ("</image>", 269),
    ("<reserved:0>", 270),
    ("<reserved:1>", 271),
    ("<reserved:2>", 272),
    ("<reserved:3>", 273),
    ("<reserved:4>", 274),
    ("<reserved:5>", 275),
    ("<reserved:6>", 276),
    ("<reserved:7>", 277),
    ("<reserved:8>", 278),
    ("<reserved:9>", 279),
    ("<reserved:10>", 280),
    ("<reserved:11>", 281),
    ("<reserved:12>", 282),
    ("<reserved:13>", 283),
    ("<reserved:14>", 284),
    ("<reserved:15>", 285),
    ("<reserved:16>", 286),
    ("<reserved:17>", 287),
    ("<reserved:18>", 288),
];

/// Routing tokens of the text vocabulary, `(name, id)`; ids `289..297`. A
/// routing token in the text stream marks where the
/// [`OutputRouter`](crate::router::OutputRouter) hands the position to a head.
pub const ROUTE_TOKENS: [(&str, usize); 8] = [
    ("<route:text>", 289),
    ("<route:video>", 290),
    ("<route:talk>", 291),
    ("<route:end>", 292),
    ("<route:reserved:0>", 293),
    ("<route:reserved:1>", 294),
    ("<route:reserved:2>", 295),
    ("<route:reserved:3>", 296),
];

/// Padding (also the filler of [`TalkerHead`](crate::talker::TalkerHead) outputs).
pub const PAD: usize = 256;
/// Beginning of sequence (also the left context of the first trigram).
pub const BOS: usize = 257;
/// End of sequence.
pub const EOS: usize = 258;

/// Size of the audio vocabulary: 256 codebook codes + 33 control tokens = 289.
pub const AUDIO_VOCAB: usize = PAYLOAD_TOKENS + CONTROL_TOKENS.len();
/// Size of the text vocabulary: 256 bytes + 33 control tokens + 8 routing tokens = 297.
pub const TEXT_VOCAB: usize = AUDIO_VOCAB + ROUTE_TOKENS.len();

/// Width of the hashed-trigram embedding and of the VideoHead's `noise_embed` rows.
pub const TRIGRAM_DIM: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_contiguous_and_sizes_add_up() {
        for (i, (_, id)) in CONTROL_TOKENS.iter().enumerate() {
            assert_eq!(*id, PAYLOAD_TOKENS + i);
        }
        for (i, (_, id)) in ROUTE_TOKENS.iter().enumerate() {
            assert_eq!(*id, AUDIO_VOCAB + i);
        }
        assert_eq!((AUDIO_VOCAB, TEXT_VOCAB), (289, 297));
        assert_eq!(CONTROL_TOKENS[PAD - 256].0, "<pad>");
        assert_eq!(CONTROL_TOKENS[BOS - 256].0, "<bos>");
        assert_eq!(CONTROL_TOKENS[EOS - 256].0, "<eos>");
    }
}
