/*
 * hex: the value of one hexadecimal digit, either case, for the parsers of
 * client text that decode hex (percent-escapes, API key hashes). Pure and
 * thread safe.
 */
#ifndef CONSUMA_HEX_H
#define CONSUMA_HEX_H

/* 0..15 for '0'-'9', 'a'-'f' and 'A'-'F'; -1 for any other byte. */
int hex_digit(char c);

#endif
