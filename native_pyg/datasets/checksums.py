"""SHA-256 of the released WildKGC triple files (authors' commit c72291c).

A download whose hash differs is an error: a changed upstream file must not
silently change results.
"""
import hashlib

SHA256 = {
    'DB15K/entity2id.txt': '8f8d070f1bb24d07ed3050e4e4e780cb7f2245d0b14db3346e8db4fa55981728',
    'DB15K/relation2id.txt': '25e5a975ee079dbd5b8d22ffe23575a9e3135d263e0a3763224777bf526c1a74',
    'DB15K/train2id.txt': 'd41f9b9ab5c0e6eed393e0f93febb4258dc02e5e4a4e2a99c49410d167522804',
    'DB15K/valid2id.txt': 'dc7ed39aa14e35a2f7ac09a0ff046067ee0e0d7953f8a204f04e7c09776095b1',
    'DB15K/test2id.txt': '15f28535d04f3711b739a49d824f2346167384283cde57123376392d418ad6de',
    'MKG-W/entity2id.txt': 'd94b546efcb535d8253821626dd32f3ee876b2f263b727a4a446bc74697785df',
    'MKG-W/relation2id.txt': '204203e03a92d4f973ee815449695bcfaae1b6917fcb08b65f3b0fb071a47f61',
    'MKG-W/train2id.txt': 'a9f316506a20a7b5bef7de3ceaaa1e82de554b8e92e6aa26e7cb54bcd8ada53d',
    'MKG-W/valid2id.txt': '34dd556893b8e4832600298864dbd18012529a1f172793c21e45ad7bdee9d189',
    'MKG-W/test2id.txt': '0e1294b1f95c8ef80ad422aeefafea321d16c1d127570e6bb566882b2e053989',
    'MKG-Y/entity2id.txt': '416f6f77c13d0cf0c5cae9625a62b9f7d26320c27ae408f5ce4e7eae3206b8d9',
    'MKG-Y/relation2id.txt': '78d468edc02688f742c9b5a1030a071789ab24784dd2e48897643fe108ff4e4d',
    'MKG-Y/train2id.txt': '71310c2c274e5ba2ce550433ef5c8496920bd03f50fd6057e64fc9c34e1e1aac',
    'MKG-Y/valid2id.txt': '6c82db2d2b809aabf72f94bc19be3080b53ffba1caec12b81510354a7fe3470e',
    'MKG-Y/test2id.txt': '8602cbbe7e3aef2c857df66eec5f7e4a2d6b02b19f58feff085688fb28980158',
    'TIVA/entity2id.txt': 'c8c8fb60629c05fef41689d96eefec0899e52f81c702c0ac63b32bfdca1c5cf0',
    'TIVA/relation2id.txt': 'b53b33fa69a4a9e1c576e4d0967a36f44f5674e2ce3212f91afaac6fbe0e40de',
    'TIVA/train2id.txt': 'af1a3772d3bb33f792c9f8f17a841c40f20311ab7c085de2dd3cd04c09abd6bd',
    'TIVA/valid2id.txt': '04c769b2adbad63e1b83da1654b59524b6098262bb32e31c331b7bfd2432fc44',
    'TIVA/test2id.txt': 'b656c7080fcceaf09fcd338e94a5c62a8dd05bbd9f28ee47b129ce78d14a2ee5',
    'Kuai16K/entity2id.txt': 'dc68dc81c099fd88d966c42d84fe4d30b9cd91700075ca8f4c31c3e4a2006813',
    'Kuai16K/relation2id.txt': '1dade5e1aca65a0c0004c7ad240936791d745631a75bb0b69f278e28f8fa8ca2',
    'Kuai16K/train2id.txt': '9d9e180ec9c91c12260094f6ef0f32cc13763493c4943e400faeaa36e9c94d50',
    'Kuai16K/valid2id.txt': '14c9222252c01a48567c75a5967efbab7d66c6f55259f70af9b417aa135141fd',
    'Kuai16K/test2id.txt': 'cfca850a7276a240f01a86d4fc5f1c6136fa13ab92cc840aee546d539b8175ef',
}


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def canonical_sha256(path: str) -> str:
    """SHA-256 of a text file as the released files are written: UTF-8
    without a byte-order mark, ``\\n`` line endings, no trailing whitespace,
    no trailing blank lines, one final newline. Equal to the released sum
    when a file differs from it only in those respects."""
    with open(path, 'rb') as f:
        text = f.read()
    if text.startswith(b'\xef\xbb\xbf'):
        text = text[3:]
    lines = [line.rstrip() for line in text.replace(b'\r\n', b'\n').split(b'\n')]
    while lines and not lines[-1]:
        lines.pop()
    return hashlib.sha256(b'\n'.join(lines) + b'\n').hexdigest()


class ChecksumError(ValueError):
    """A raw file differs from the released one; the message names the file."""
