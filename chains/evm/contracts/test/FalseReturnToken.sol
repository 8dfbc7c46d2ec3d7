// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TokenBase} from "./TokenBase.sol";

/// @title Test token returning false on success
/// @notice An ERC-20 whose transfer moves the balance and then returns false, like USDT on
///         Tron. For tests only.
contract FalseReturnToken is TokenBase {
    /// @notice Creates the token with no supply.
    /// @param name_ token name.
    /// @param symbol_ token symbol.
    /// @param decimals_ number of decimals.
    constructor(string memory name_, string memory symbol_, uint8 decimals_)
        TokenBase(name_, symbol_, decimals_)
    {}

    /// @notice Moves tokens from the caller, then returns false anyway.
    /// @param to recipient.
    /// @param amount amount.
    /// @return always false, although the tokens moved (failures revert).
    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return false;
    }
}
