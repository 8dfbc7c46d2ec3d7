// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TokenBase} from "./TokenBase.sol";

/// @title Test token without return values
/// @notice An ERC-20 whose transfer returns nothing, like USDT on Ethereum. For tests only.
contract NoReturnToken is TokenBase {
    /// @notice Creates the token with no supply.
    /// @param name_ token name.
    /// @param symbol_ token symbol.
    /// @param decimals_ number of decimals.
    constructor(string memory name_, string memory symbol_, uint8 decimals_)
        TokenBase(name_, symbol_, decimals_)
    {}

    /// @notice Moves tokens from the caller; returns nothing, reverts on failure.
    /// @param to recipient.
    /// @param amount amount.
    function transfer(address to, uint256 amount) external {
        _move(msg.sender, to, amount);
    }
}
