// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Quorate withdrawal vault
/// @notice Holds native coin and ERC-20/TRC-20 tokens and pays them out only on a
///         FROST(secp256k1, SHA-256) threshold signature (RFC 9591) by the Quorate
///         group key. There is no owner, no admin address, no upgrade path and no
///         delegatecall: the group key is the only authority. The same bytecode
///         (compiled for the "paris" EVM) runs on EVM chains and on Tron's TVM.
/// @dev Every digest is keccak256 over 32-byte ABI words and binds the chain id,
///      this vault's address and VERSION, so a signature is good for exactly one
///      action on one vault on one chain. Signatures are checked with the
///      ecrecover trick: ecrecover(h, v, r, s) returns address(r^-1 (s*P - h*G))
///      where P is the point of x-coordinate r and y parity v - 27; with r = x,
///      s = -c*x and h = -z*x it returns address(z*G - c*PK), which must equal
///      address(R).
contract QuorateVault {
    // ------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------

    /// @notice A FROST signature: the group nonce commitment R in affine
    ///         coordinates and the response scalar z.
    /// @param rx x coordinate of R, below the field prime p.
    /// @param ry y coordinate of R, below the field prime p.
    /// @param z response scalar, below the group order n.
    struct Signature {
        uint256 rx;
        uint256 ry;
        uint256 z;
    }

    /// @notice A withdrawal cap set at construction.
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units; type(uint128).max means no cap.
    /// @param refillPerSecond base units added back to the bucket each second.
    struct CapInit {
        address token;
        uint128 capacity;
        uint128 refillPerSecond;
    }

    /// @dev The packed first storage slot, read once by withdraw.
    struct Meta {
        // 0 while the initial (immutable) key is in force, else the rotated key's prefix.
        uint8 rotatedPrefix;
        // Nonce the next rotateKey / setCap must carry.
        uint64 adminNonce;
        // How many tokens currently have a cap.
        uint32 cappedTokens;
    }

    /// @dev Per-token bucket state; one slot, read by withdraw when caps exist.
    struct Bucket {
        uint128 level;
        uint64 updatedAt;
        bool capped;
    }

    /// @dev Per-token bucket parameters; one slot, read only for a capped token.
    struct Limit {
        uint128 capacity;
        uint128 refillPerSecond;
    }

    /// @dev A cap raise waiting for its delay; eta == 0 means nothing pending.
    struct PendingCap {
        uint128 capacity;
        uint128 refillPerSecond;
        uint64 eta;
    }

    // ------------------------------------------------------------------
    // Constants
    // ------------------------------------------------------------------

    /// @notice Version of the digest formats, bound into every digest.
    uint256 public constant VERSION = 1;

    /// @notice Domain tag of withdrawal digests.
    bytes32 public constant WITHDRAW_TAG = keccak256("QUORATE/evm-vault/withdraw");

    /// @notice Domain tag of key rotation digests.
    bytes32 public constant ROTATE_TAG = keccak256("QUORATE/evm-vault/rotate-key");

    /// @notice Domain tag of cap change digests.
    bytes32 public constant CAP_TAG = keccak256("QUORATE/evm-vault/set-cap");

    /// @dev secp256k1 group order n.
    uint256 private constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// @dev secp256k1 field prime p.
    uint256 private constant P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F;

    /// @dev (p + 1) / 4: since p = 3 mod 4, a^((p+1)/4) is a square root of a when one exists.
    uint256 private constant SQRT_EXP = 0x3FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFBFFFFF0C;

    /// @dev Bytes 162..193 of msg_prime: I2OSP(48, 2) || I2OSP(0, 1) || DST, where
    ///      DST = "FROST-secp256k1-SHA256-v1chal" (29 bytes).
    uint256 private constant XMD_TAIL_0 = 0x00300046524F53542D736563703235366B312D5348413235362D76316368616C;

    /// @dev 0x01 || DST || I2OSP(29, 1) || one padding byte (only 31 bytes are hashed).
    uint256 private constant XMD_TAIL_1 = 0x0146524F53542D736563703235366B312D5348413235362D76316368616C1D00;

    /// @dev 0x02 || DST || I2OSP(29, 1) || one padding byte (only 31 bytes are hashed).
    uint256 private constant XMD_TAIL_2 = 0x0246524F53542D736563703235366B312D5348413235362D76316368616C1D00;

    /// @dev Result codes of _verify.
    uint256 private constant SIG_OK = 0;
    uint256 private constant SIG_SCALAR_OUT_OF_RANGE = 1;
    uint256 private constant SIG_POINT_NOT_ON_CURVE = 2;
    uint256 private constant SIG_BAD = 3;

    /// @dev "No cap" marker for capacity.
    uint128 private constant UNCAPPED = type(uint128).max;

    // ------------------------------------------------------------------
    // Immutables and storage
    // ------------------------------------------------------------------

    /// @dev SEC1 prefix (2 or 3) of the key given at construction.
    uint8 private immutable _initialPrefix;

    /// @dev x coordinate of the key given at construction.
    uint256 private immutable _initialX;

    /// @notice Seconds a cap raise waits before applyCap may apply it.
    uint64 public immutable capRaiseDelay;

    /// @dev Slot 0: rotated key prefix, admin nonce, number of capped tokens.
    Meta private _meta;

    /// @dev Slot 1: x coordinate of the rotated key (meaningful only when _meta.rotatedPrefix != 0).
    uint256 private _rotatedX;

    /// @notice Whether a withdrawal id has been paid (replay protection).
    mapping(bytes32 id => bool) public used;

    mapping(address token => Bucket) private _buckets;
    mapping(address token => Limit) private _limits;
    mapping(address token => PendingCap) private _pending;

    // ------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------

    /// @notice A withdrawal was paid.
    /// @param id the withdrawal id, never payable twice.
    /// @param token token address, address(0) for the native coin.
    /// @param to recipient.
    /// @param amount amount in base units.
    event Withdrawn(bytes32 indexed id, address token, address to, uint256 amount);

    /// @notice The group key was replaced; the previous key signs nothing any more.
    /// @param nonce the admin nonce the rotation was signed with.
    /// @param prefix SEC1 prefix of the new key.
    /// @param x x coordinate of the new key.
    event KeyRotated(uint64 nonce, uint8 prefix, uint256 x);

    /// @notice A token's cap took effect (capacity type(uint128).max: cap removed).
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units.
    /// @param refillPerSecond refill rate in base units per second.
    event CapChanged(address indexed token, uint128 capacity, uint128 refillPerSecond);

    /// @notice A cap raise was scheduled; applyCap applies it from eta on.
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units (type(uint128).max: remove the cap).
    /// @param refillPerSecond refill rate in base units per second.
    /// @param eta timestamp from which applyCap applies it.
    event CapRaiseScheduled(address indexed token, uint128 capacity, uint128 refillPerSecond, uint64 eta);

    // ------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------

    /// @notice The group key is not a valid compressed secp256k1 point with x < n.
    error BadKey();
    /// @notice The signature's z is not below the group order n.
    error ScalarOutOfRange();
    /// @notice The signature's R is not a point of secp256k1.
    error PointNotOnCurve();
    /// @notice The signature does not verify under the current group key.
    error BadSignature();
    /// @notice The withdrawal's deadline is in the past.
    /// @param deadline the signed deadline.
    error DeadlinePassed(uint64 deadline);
    /// @notice The withdrawal id was already paid.
    /// @param id the withdrawal id.
    error WithdrawalReplayed(bytes32 id);
    /// @notice Zero amount, zero recipient or the vault itself as recipient.
    error BadWithdrawal();
    /// @notice The amount is above what the token's bucket holds now.
    /// @param token token address, address(0) for the native coin.
    /// @param level what the bucket holds now.
    error CapExceeded(address token, uint128 level);
    /// @notice Paying out failed, or the recipient's balance did not grow by exactly the amount.
    /// @param token token address, address(0) for the native coin.
    error TransferFailed(address token);
    /// @notice The admin nonce is not the expected one.
    /// @param expected the nonce the next admin action must carry.
    error BadNonce(uint64 expected);
    /// @notice applyCap found no pending raise for the token.
    error NothingPending();
    /// @notice applyCap was called before the pending raise's eta.
    /// @param eta timestamp from which the raise can be applied.
    error TooEarly(uint64 eta);

    // ------------------------------------------------------------------
    // Construction and deposits
    // ------------------------------------------------------------------

    /// @notice Creates a vault controlled by the given group key.
    /// @param keyPrefix SEC1 prefix of the group key: 2 (even y) or 3 (odd y).
    /// @param keyX x coordinate of the group key; must be below the group order n.
    /// @param capRaiseDelay_ seconds a cap raise waits before it can be applied.
    /// @param caps initial per-token caps; each bucket starts full.
    constructor(uint8 keyPrefix, uint256 keyX, uint64 capRaiseDelay_, CapInit[] memory caps) {
        if (!_isValidKey(keyPrefix, keyX)) revert BadKey();
        _initialPrefix = keyPrefix;
        _initialX = keyX;
        capRaiseDelay = capRaiseDelay_;
        Meta memory m = _meta;
        for (uint256 i = 0; i < caps.length; ++i) {
            _setCapNow(m, caps[i].token, caps[i].capacity, caps[i].refillPerSecond);
        }
        _meta = m;
    }

    /// @notice Accepts native coin deposits.
    receive() external payable {}

    // ------------------------------------------------------------------
    // Withdrawals
    // ------------------------------------------------------------------

    /// @notice Pays `amount` of `token` to `to` on a group signature over
    ///         withdrawDigestFor(block.chainid, address(this), id, token, to, amount, deadline).
    /// @dev Tokens are paid with a plain transfer call whose return value is
    ///      ignored (some tokens return nothing, Tron's USDT returns false on
    ///      success); instead the recipient's balance must grow by exactly `amount`.
    /// @param id withdrawal id; each id is paid at most once.
    /// @param token token address, address(0) for the native coin.
    /// @param to recipient; neither address(0) nor this vault.
    /// @param amount amount in base units, above zero.
    /// @param deadline last timestamp at which the withdrawal may be paid.
    /// @param sig group signature.
    function withdraw(
        bytes32 id,
        address token,
        address to,
        uint256 amount,
        uint64 deadline,
        Signature calldata sig
    ) external {
        if (block.timestamp > deadline) revert DeadlinePassed(deadline);
        bytes32 usedSlot = _usedSlot(id);
        if (_isSet(usedSlot)) revert WithdrawalReplayed(id);
        if (to == address(0) || to == address(this) || amount == 0) revert BadWithdrawal();
        uint256 metaWord = _metaWord();
        {
            (uint8 prefix, uint256 x) = _keyOf(metaWord);
            _requireSignature(
                prefix,
                x,
                _withdrawDigest(block.chainid, address(this), id, token, to, amount, deadline),
                sig
            );
        }
        _set(usedSlot);
        if (_cappedTokensOf(metaWord) != 0) _drawFromBucket(token, amount);
        if (token == address(0)) {
            _payNative(to, amount);
        } else {
            _payToken(token, to, amount);
        }
        emit Withdrawn(id, token, to, amount);
    }

    // ------------------------------------------------------------------
    // Administration (group-signed)
    // ------------------------------------------------------------------

    /// @notice Replaces the group key, on a signature by the current key over
    ///         rotateDigestFor(block.chainid, address(this), nonce, newPrefix, newX).
    /// @param newPrefix SEC1 prefix of the new key: 2 or 3.
    /// @param newX x coordinate of the new key, below the group order n.
    /// @param nonce must equal adminNonce().
    /// @param sig signature by the current group key.
    function rotateKey(uint8 newPrefix, uint256 newX, uint64 nonce, Signature calldata sig) external {
        Meta memory m = _meta;
        if (nonce != m.adminNonce) revert BadNonce(m.adminNonce);
        {
            (uint8 prefix, uint256 x) = _currentKey(m);
            _requireSignature(prefix, x, _rotateDigest(block.chainid, address(this), nonce, newPrefix, newX), sig);
        }
        if (!_isValidKey(newPrefix, newX)) revert BadKey();
        m.adminNonce = nonce + 1;
        m.rotatedPrefix = newPrefix;
        _meta = m;
        _rotatedX = newX;
        emit KeyRotated(nonce, newPrefix, newX);
    }

    /// @notice Sets a token's cap, on a signature by the current key over
    ///         capDigestFor(block.chainid, address(this), nonce, token, capacity, refillPerSecond).
    /// @dev A lowering (the token is uncapped and the new capacity is finite, or
    ///      neither capacity nor rate grows) applies at once and cancels any
    ///      pending raise. Anything else (including removing a cap, and
    ///      type(uint128).max on an uncapped token) is a raise: it replaces any
    ///      earlier pending raise and can be applied by applyCap after
    ///      capRaiseDelay seconds. Capacity 0 stops the token. A raise
    ///      scheduled before a key rotation can still be applied; the new key
    ///      cancels it with any lowering (e.g. the current values again).
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units; type(uint128).max removes the cap.
    /// @param refillPerSecond refill rate in base units per second.
    /// @param nonce must equal adminNonce().
    /// @param sig signature by the current group key.
    function setCap(
        address token,
        uint128 capacity,
        uint128 refillPerSecond,
        uint64 nonce,
        Signature calldata sig
    ) external {
        Meta memory m = _meta;
        if (nonce != m.adminNonce) revert BadNonce(m.adminNonce);
        {
            (uint8 prefix, uint256 x) = _currentKey(m);
            _requireSignature(
                prefix,
                x,
                _capDigest(block.chainid, address(this), nonce, token, capacity, refillPerSecond),
                sig
            );
        }
        m.adminNonce = nonce + 1;
        if (_isLowering(token, capacity, refillPerSecond)) {
            _setCapNow(m, token, capacity, refillPerSecond);
        } else {
            uint64 eta = uint64(block.timestamp) + capRaiseDelay;
            _pending[token] = PendingCap(capacity, refillPerSecond, eta);
            emit CapRaiseScheduled(token, capacity, refillPerSecond, eta);
        }
        _meta = m;
    }

    /// @notice Applies a token's pending cap raise; anyone may call it from its eta on.
    /// @param token token address, address(0) for the native coin.
    function applyCap(address token) external {
        PendingCap memory p = _pending[token];
        if (p.eta == 0) revert NothingPending();
        if (block.timestamp < p.eta) revert TooEarly(p.eta);
        Meta memory m = _meta;
        _setCapNow(m, token, p.capacity, p.refillPerSecond);
        _meta = m;
    }

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    /// @notice The group key in force.
    /// @return prefix SEC1 prefix: 2 (even y) or 3 (odd y).
    /// @return x x coordinate.
    function groupKey() external view returns (uint8 prefix, uint256 x) {
        return _currentKey(_meta);
    }

    /// @notice The nonce the next rotateKey or setCap must carry.
    /// @return the admin nonce.
    function adminNonce() external view returns (uint64) {
        return _meta.adminNonce;
    }

    /// @notice How many tokens currently have a cap.
    /// @return the number of capped tokens.
    function cappedTokens() external view returns (uint32) {
        return _meta.cappedTokens;
    }

    /// @notice A token's cap. The bucket held `level` at `updatedAt`; it holds
    ///         min(capacity, level + refillPerSecond * (now - updatedAt)) now.
    /// @param token token address, address(0) for the native coin.
    /// @return capped whether the token has a cap (all other values are 0 when not).
    /// @return capacity largest burst in base units.
    /// @return refillPerSecond refill rate in base units per second.
    /// @return level bucket level at updatedAt.
    /// @return updatedAt timestamp of the last bucket update.
    function capOf(address token)
        external
        view
        returns (bool capped, uint128 capacity, uint128 refillPerSecond, uint128 level, uint64 updatedAt)
    {
        Bucket memory b = _buckets[token];
        Limit memory l = _limits[token];
        return (b.capped, l.capacity, l.refillPerSecond, b.level, b.updatedAt);
    }

    /// @notice What a withdrawal of `token` may take now.
    /// @param token token address, address(0) for the native coin.
    /// @return available bucket level now; type(uint256).max when uncapped.
    function capAvailable(address token) external view returns (uint256 available) {
        Bucket memory b = _buckets[token];
        if (!b.capped) return type(uint256).max;
        return _refreshedLevel(b, _limits[token]);
    }

    /// @notice A token's pending cap raise.
    /// @param token token address, address(0) for the native coin.
    /// @return pending whether a raise is pending (all other values are 0 when not).
    /// @return capacity the scheduled capacity (type(uint128).max: cap removal).
    /// @return refillPerSecond the scheduled refill rate.
    /// @return eta timestamp from which applyCap applies it.
    function pendingCapOf(address token)
        external
        view
        returns (bool pending, uint128 capacity, uint128 refillPerSecond, uint64 eta)
    {
        PendingCap memory p = _pending[token];
        return (p.eta != 0, p.capacity, p.refillPerSecond, p.eta);
    }

    /// @notice Whether (prefix, x) is a group key this vault accepts: prefix 2
    ///         or 3, 0 < x < n, and x the x coordinate of a secp256k1 point.
    /// @param prefix SEC1 prefix.
    /// @param x x coordinate.
    /// @return whether the key is valid.
    function isValidKey(uint8 prefix, uint256 x) external view returns (bool) {
        return _isValidKey(prefix, x);
    }

    /// @notice Verifies a FROST(secp256k1, SHA-256) signature over a 32-byte
    ///         message under any key, returning false instead of reverting.
    /// @dev Uses the same code as withdraw, rotateKey and setCap.
    /// @param prefix SEC1 prefix of the key: 2 or 3.
    /// @param x x coordinate of the key.
    /// @param message the 32-byte message (a digest).
    /// @param sig the signature.
    /// @return whether the signature is valid.
    function checkSignature(uint8 prefix, uint256 x, bytes32 message, Signature calldata sig)
        public
        view
        returns (bool)
    {
        if ((prefix != 2 && prefix != 3) || x == 0 || x >= N) return false;
        return _verify(prefix, x, message, sig) == SIG_OK;
    }

    /// @notice The digest a withdrawal signature covers.
    /// @param chainId chain id (block.chainid on the target chain).
    /// @param vault vault address.
    /// @param id withdrawal id.
    /// @param token token address, address(0) for the native coin.
    /// @param to recipient.
    /// @param amount amount in base units.
    /// @param deadline last timestamp at which the withdrawal may be paid.
    /// @return the digest.
    function withdrawDigestFor(
        uint256 chainId,
        address vault,
        bytes32 id,
        address token,
        address to,
        uint256 amount,
        uint64 deadline
    ) external pure returns (bytes32) {
        return _withdrawDigest(chainId, vault, id, token, to, amount, deadline);
    }

    /// @notice The digest a key rotation signature covers.
    /// @param chainId chain id (block.chainid on the target chain).
    /// @param vault vault address.
    /// @param nonce admin nonce.
    /// @param newPrefix SEC1 prefix of the new key.
    /// @param newX x coordinate of the new key.
    /// @return the digest.
    function rotateDigestFor(uint256 chainId, address vault, uint64 nonce, uint8 newPrefix, uint256 newX)
        external
        pure
        returns (bytes32)
    {
        return _rotateDigest(chainId, vault, nonce, newPrefix, newX);
    }

    /// @notice The digest a cap change signature covers.
    /// @param chainId chain id (block.chainid on the target chain).
    /// @param vault vault address.
    /// @param nonce admin nonce.
    /// @param token token address, address(0) for the native coin.
    /// @param capacity largest burst in base units.
    /// @param refillPerSecond refill rate in base units per second.
    /// @return the digest.
    function capDigestFor(
        uint256 chainId,
        address vault,
        uint64 nonce,
        address token,
        uint128 capacity,
        uint128 refillPerSecond
    ) external pure returns (bytes32) {
        return _capDigest(chainId, vault, nonce, token, capacity, refillPerSecond);
    }

    // ------------------------------------------------------------------
    // Digests
    // ------------------------------------------------------------------

    function _withdrawDigest(
        uint256 chainId,
        address vault,
        bytes32 id,
        address token,
        address to,
        uint256 amount,
        uint64 deadline
    ) private pure returns (bytes32 digest) {
        bytes32 tag = WITHDRAW_TAG;
        uint256 version = VERSION;
        // keccak256(abi.encode(tag, chainId, vault, version, id, token, to, amount, deadline)),
        // written word by word past the free memory pointer (nine words, 0x120
        // bytes) to keep the legacy code generator's stack shallow. Solidity
        // does not promise clean high bits for address / uint64 values seen
        // from assembly, so they are masked into ABI words here.
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, tag)
            mstore(add(buf, 0x20), chainId)
            mstore(add(buf, 0x40), and(vault, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0x60), version)
            mstore(add(buf, 0x80), id)
            mstore(add(buf, 0xa0), and(token, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0xc0), and(to, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0xe0), amount)
            mstore(add(buf, 0x100), and(deadline, 0xffffffffffffffff))
            digest := keccak256(buf, 0x120)
        }
    }

    function _rotateDigest(uint256 chainId, address vault, uint64 nonce, uint8 newPrefix, uint256 newX)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(ROTATE_TAG, chainId, vault, VERSION, nonce, newPrefix, newX));
    }

    function _capDigest(
        uint256 chainId,
        address vault,
        uint64 nonce,
        address token,
        uint128 capacity,
        uint128 refillPerSecond
    ) private pure returns (bytes32 digest) {
        bytes32 tag = CAP_TAG;
        uint256 version = VERSION;
        // keccak256(abi.encode(tag, chainId, vault, version, nonce, token, capacity, refillPerSecond)),
        // written word by word past the free memory pointer (eight words,
        // 0x100 bytes) to keep the stack shallow. Values narrower than 256
        // bits are masked into clean ABI words (see _withdrawDigest).
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, tag)
            mstore(add(buf, 0x20), chainId)
            mstore(add(buf, 0x40), and(vault, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0x60), version)
            mstore(add(buf, 0x80), and(nonce, 0xffffffffffffffff))
            mstore(add(buf, 0xa0), and(token, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0xc0), and(capacity, 0xffffffffffffffffffffffffffffffff))
            mstore(add(buf, 0xe0), and(refillPerSecond, 0xffffffffffffffffffffffffffffffff))
            digest := keccak256(buf, 0x100)
        }
    }

    // ------------------------------------------------------------------
    // Keys and signatures
    // ------------------------------------------------------------------

    function _currentKey(Meta memory m) private view returns (uint8 prefix, uint256 x) {
        if (m.rotatedPrefix == 0) return (_initialPrefix, _initialX);
        return (m.rotatedPrefix, _rotatedX);
    }

    /// @dev The packed Meta slot as one word, read with a single SLOAD.
    function _metaWord() private view returns (uint256 word) {
        // Solidity packs struct members from the low-order end of the slot:
        // rotatedPrefix is bits 0-7, adminNonce bits 8-71, cappedTokens bits 72-103.
        assembly ("memory-safe") {
            word := sload(_meta.slot)
        }
    }

    /// @dev The current key from the packed Meta word; reads _rotatedX only after a rotation.
    function _keyOf(uint256 metaWord) private view returns (uint8 prefix, uint256 x) {
        uint8 rotatedPrefix = uint8(metaWord);
        if (rotatedPrefix == 0) return (_initialPrefix, _initialX);
        return (rotatedPrefix, _rotatedX);
    }

    /// @dev cappedTokens from the packed Meta word.
    function _cappedTokensOf(uint256 metaWord) private pure returns (uint32) {
        return uint32(metaWord >> 72);
    }

    /// @dev The storage slot of used[id], computed once for the check and the write.
    function _usedSlot(bytes32 id) private pure returns (bytes32 slot) {
        // Solidity's mapping slot: keccak256(key || mapping slot), in scratch space.
        assembly ("memory-safe") {
            mstore(0x00, id)
            mstore(0x20, used.slot)
            slot := keccak256(0x00, 0x40)
        }
    }

    /// @dev Whether the bool at `slot` (a used[id] slot) is true.
    function _isSet(bytes32 slot) private view returns (bool isSet) {
        // The bool is alone in its slot, stored as 0 or 1.
        assembly ("memory-safe") {
            isSet := sload(slot)
        }
    }

    /// @dev Sets the bool at `slot` (a used[id] slot) to true.
    function _set(bytes32 slot) private {
        // The bool is alone in its slot: write 1 without reading the slot first.
        assembly ("memory-safe") {
            sstore(slot, 1)
        }
    }

    function _isValidKey(uint8 prefix, uint256 x) private view returns (bool valid) {
        if ((prefix != 2 && prefix != 3) || x == 0 || x >= N) return false;
        uint256 rhs = addmod(mulmod(mulmod(x, x, P), x, P), 7, P);
        uint256 y;
        // y = rhs^((p+1)/4) mod p with the modexp precompile (address 0x05).
        // Input: three 32-byte lengths (base, exponent, modulus), then base,
        // exponent and modulus, written past the free memory pointer. A failed
        // call or a short answer leaves valid false (so the key is refused).
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, 0x20)
            mstore(add(buf, 0x20), 0x20)
            mstore(add(buf, 0x40), 0x20)
            mstore(add(buf, 0x60), rhs)
            mstore(add(buf, 0x80), SQRT_EXP)
            mstore(add(buf, 0xa0), P)
            // Yul evaluates arguments right to left, so the call goes first on its own.
            let success := staticcall(gas(), 0x05, buf, 0xc0, buf, 0x20)
            if and(success, eq(returndatasize(), 0x20)) {
                y := mload(buf)
                valid := 1
            }
        }
        return valid && mulmod(y, y, P) == rhs;
    }

    function _requireSignature(uint8 prefix, uint256 x, bytes32 message, Signature calldata sig) private view {
        uint256 status = _verify(prefix, x, message, sig);
        if (status != SIG_OK) {
            if (status == SIG_SCALAR_OUT_OF_RANGE) revert ScalarOutOfRange();
            if (status == SIG_POINT_NOT_ON_CURVE) revert PointNotOnCurve();
            revert BadSignature();
        }
    }

    /// @dev Verifies a FROST(secp256k1, SHA-256) signature over `message` under
    ///      the key (prefix, x), which callers ensure has prefix 2 or 3 and
    ///      0 < x < n. Returns one of the SIG_* codes, never reverts.
    function _verify(uint8 prefix, uint256 x, bytes32 message, Signature calldata sig)
        private
        view
        returns (uint256 status)
    {
        // The whole check in one assembly block (it runs on every withdrawal,
        // and Solidity's stack shuffling between helpers cost more than the
        // arithmetic). Memory past the free memory pointer is used as scratch
        // and never handed back to Solidity; so is the scratch space 0x00-0x3f.
        assembly ("memory-safe") {
            // Returns 0 (valid), 1 (z >= n), 2 (R not on the curve) or 3 (bad).
            function check(keyPrefix, keyX, m, rx, ry, z) -> st {
                // 1. z < n; R = (rx, ry) with coordinates below p and ry^2 = rx^3 + 7 (mod p).
                if iszero(lt(z, N)) {
                    st := SIG_SCALAR_OUT_OF_RANGE
                    leave
                }
                if iszero(and(lt(rx, P), lt(ry, P))) {
                    st := SIG_POINT_NOT_ON_CURVE
                    leave
                }
                if iszero(eq(mulmod(ry, ry, P), addmod(mulmod(mulmod(rx, rx, P), rx, P), 7, P))) {
                    st := SIG_POINT_NOT_ON_CURVE
                    leave
                }

                // 2. c = H2(enc(R) || enc(PK) || m) mod n with RFC 9380
                //    expand_message_xmd(SHA-256, DST = "FROST-secp256k1-SHA256-v1chal",
                //    48 bytes), hashing with the SHA-256 precompile (0x02).
                //    msg_prime (195 bytes) at buf:
                //      [0, 64)     Z_pad: 64 zero bytes
                //      64          enc(R) prefix: 2 + (ry & 1)
                //      [65, 97)    R.x
                //      97          enc(PK) prefix
                //      [98, 130)   PK.x
                //      [130, 162)  m
                //      [162, 194)  I2OSP(48, 2) || I2OSP(0, 1) || DST
                //      194         I2OSP(len(DST) = 29, 1)
                //    mstore writes whole words, so fields are written left to
                //    right and each single byte after the word that would cover it.
                let buf := mload(0x40)
                mstore(buf, 0)
                mstore(add(buf, 0x20), 0)
                mstore(add(buf, 0x41), rx)
                mstore8(add(buf, 0x40), add(2, and(ry, 1)))
                mstore(add(buf, 0x62), keyX)
                mstore8(add(buf, 0x61), keyPrefix)
                mstore(add(buf, 0x82), m)
                mstore(add(buf, 0xa2), XMD_TAIL_0)
                mstore8(add(buf, 0xc2), 0x1d)
                // b0 = H(msg_prime), left at buf.
                let ok := staticcall(gas(), 0x02, buf, 0xc3, buf, 0x20)
                let b0 := mload(buf)
                // b1 = H(b0 || 0x01 || DST_prime): 63 bytes at buf, result at buf + 0x40.
                mstore(add(buf, 0x20), XMD_TAIL_1)
                ok := and(ok, staticcall(gas(), 0x02, buf, 0x3f, add(buf, 0x40), 0x20))
                let b1 := mload(add(buf, 0x40))
                // b2 = H((b0 xor b1) || 0x02 || DST_prime), same places.
                mstore(buf, xor(b0, b1))
                mstore(add(buf, 0x20), XMD_TAIL_2)
                ok := and(ok, staticcall(gas(), 0x02, buf, 0x3f, add(buf, 0x40), 0x20))
                if iszero(ok) {
                    st := SIG_BAD
                    leave
                }
                // The 48 uniform bytes b1 || b2[0..16) as an integer: b1 * 2^128 + (b2 >> 128).
                let c := addmod(mulmod(b1, shl(128, 1), N), shr(128, mload(add(buf, 0x40))), N)

                // 3. ecrecover(h, v, r, s) = address(r^-1 (s*PK - h*G)) with
                //    r = x, v = 27 + (prefix - 2), s = n - c*x, h = -z*x mod n
                //    gives address(z*G - c*PK), which must be address(R).
                //    s must lie in [1, n-1]: c*x = 0 would make it n.
                let cx := mulmod(c, keyX, N)
                if iszero(cx) {
                    st := SIG_BAD
                    leave
                }
                // h = (n - z) * x mod n = -z*x mod n (z < n, so n - z is in [1, n]).
                mstore(buf, mulmod(sub(N, z), keyX, N))
                mstore(add(buf, 0x20), add(25, keyPrefix))
                mstore(add(buf, 0x40), keyX)
                mstore(add(buf, 0x60), sub(N, cx))
                // The precompile (0x01) answers 32 bytes, or nothing when
                // recovery fails; the cleared output word then stays 0.
                mstore(0x00, 0)
                pop(staticcall(gas(), 0x01, buf, 0x80, 0x00, 0x20))
                let recovered := mload(0x00)
                // address(R): the low 160 bits of keccak256(rx || ry).
                mstore(0x00, rx)
                mstore(0x20, ry)
                let expected := and(keccak256(0x00, 0x40), 0xffffffffffffffffffffffffffffffffffffffff)
                if iszero(and(iszero(iszero(recovered)), eq(recovered, expected))) { st := SIG_BAD }
            }
            // prefix is a uint8: Solidity does not promise clean high bits in assembly.
            status := check(
                and(prefix, 0xff),
                x,
                message,
                calldataload(sig),
                calldataload(add(sig, 0x20)),
                calldataload(add(sig, 0x40))
            )
        }
    }

    // ------------------------------------------------------------------
    // Caps
    // ------------------------------------------------------------------

    function _refreshedLevel(Bucket memory b, Limit memory l) private view returns (uint256 level) {
        level = uint256(b.level) + uint256(l.refillPerSecond) * (block.timestamp - b.updatedAt);
        if (level > l.capacity) level = l.capacity;
    }

    function _drawFromBucket(address token, uint256 amount) private {
        Bucket memory b = _buckets[token];
        if (!b.capped) return;
        uint256 level = _refreshedLevel(b, _limits[token]);
        if (amount > level) revert CapExceeded(token, uint128(level));
        _buckets[token] = Bucket(uint128(level - amount), uint64(block.timestamp), true);
    }

    function _isLowering(address token, uint128 capacity, uint128 refillPerSecond) private view returns (bool) {
        if (!_buckets[token].capped) return capacity != UNCAPPED;
        Limit memory l = _limits[token];
        return capacity <= l.capacity && refillPerSecond <= l.refillPerSecond;
    }

    /// @dev Puts a cap (or, with capacity UNCAPPED, its removal) into force at
    ///      once, keeping m.cappedTokens exact and dropping any pending raise.
    function _setCapNow(Meta memory m, address token, uint128 capacity, uint128 refillPerSecond) private {
        Bucket memory b = _buckets[token];
        if (capacity == UNCAPPED) {
            if (b.capped) {
                m.cappedTokens -= 1;
                delete _buckets[token];
                delete _limits[token];
            }
        } else {
            uint256 level = capacity;
            if (b.capped) {
                uint256 current = _refreshedLevel(b, _limits[token]);
                if (current < level) level = current;
            } else {
                m.cappedTokens += 1;
            }
            _buckets[token] = Bucket(uint128(level), uint64(block.timestamp), true);
            _limits[token] = Limit(capacity, refillPerSecond);
        }
        delete _pending[token];
        emit CapChanged(token, capacity, refillPerSecond);
    }

    // ------------------------------------------------------------------
    // Payments
    // ------------------------------------------------------------------

    function _payNative(address to, uint256 amount) private {
        bool ok;
        // Plain value transfer with all gas and no return data copied (the
        // address is masked: high bits of narrow types are not promised clean).
        assembly ("memory-safe") {
            ok := call(gas(), and(to, 0xffffffffffffffffffffffffffffffffffffffff), amount, 0, 0, 0, 0)
        }
        if (!ok) revert TransferFailed(address(0));
    }

    function _payToken(address token, address to, uint256 amount) private {
        bool ok;
        // 1. before = token.balanceOf(to) (selector 0x70a08231) as a staticcall;
        // 2. token.transfer(to, amount) (selector 0xa9059cbb): only a revert
        //    counts as failure, the returned bool and any return data are ignored
        //    (some tokens return nothing, Tron's USDT returns false on success);
        // 3. afterwards = token.balanceOf(to) again, and afterwards - before
        //    must be exactly amount (without wrapping around).
        // Each balanceOf answer must be at least one 32-byte word. Calls are
        // built past the free memory pointer; answers land in scratch word 0x00.
        // Yul evaluates arguments right to left, so each call's result is bound
        // before returndatasize() is read. Addresses are masked (high bits of
        // narrow types are not promised clean in assembly).
        assembly ("memory-safe") {
            token := and(token, 0xffffffffffffffffffffffffffffffffffffffff)
            to := and(to, 0xffffffffffffffffffffffffffffffffffffffff)
            let buf := mload(0x40)
            mstore(buf, 0x70a0823100000000000000000000000000000000000000000000000000000000)
            mstore(add(buf, 0x04), to)
            ok := staticcall(gas(), token, buf, 0x24, 0x00, 0x20)
            ok := and(ok, iszero(lt(returndatasize(), 0x20)))
            let before := mload(0x00)

            mstore(buf, 0xa9059cbb00000000000000000000000000000000000000000000000000000000)
            mstore(add(buf, 0x04), to)
            mstore(add(buf, 0x24), amount)
            ok := and(ok, call(gas(), token, 0, buf, 0x44, 0, 0))

            mstore(buf, 0x70a0823100000000000000000000000000000000000000000000000000000000)
            mstore(add(buf, 0x04), to)
            let success := staticcall(gas(), token, buf, 0x24, 0x00, 0x20)
            ok := and(ok, and(success, iszero(lt(returndatasize(), 0x20))))
            let afterwards := mload(0x00)
            // afterwards >= before and afterwards - before == amount
            ok := and(ok, and(iszero(lt(afterwards, before)), eq(sub(afterwards, before), amount)))
        }
        if (!ok) revert TransferFailed(token);
    }
}
