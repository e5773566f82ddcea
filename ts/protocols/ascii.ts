/** ASCII codes the text parsers of protocols/ compare bytes with, named once. */
export const CHAR_LF = 0x0a;
export const CHAR_CR = 0x0d;
export const CHAR_SPACE = 0x20;
export const CHAR_DOT = 0x2e;
export const CHAR_0 = 0x30;
export const CHAR_9 = 0x39;
export const CHAR_COLON = 0x3a;
export const CHAR_UPPER_A = 0x41;
export const CHAR_UPPER_F = 0x46;
export const CHAR_LOWER_A = 0x61;
export const CHAR_LOWER_F = 0x66;
/** The highest ASCII code: a wider character is never part of an address or a v1 line. */
export const ASCII_MAX = 0x7f;
