// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Test token without return values
/// @notice An ERC-20 whose transfer, transferFrom and approve return nothing,
///         like USDT on Ethereum. For tests only.
contract NoReturnToken {
    /// @notice Token name.
    string public name;
    /// @notice Token symbol.
    string public symbol;
    /// @notice Number of decimals of the base unit.
    uint8 public immutable decimals;
    /// @notice Total amount minted.
    uint256 public totalSupply;
    /// @notice Balance of each holder.
    mapping(address holder => uint256) public balanceOf;
    /// @notice Amount a spender may move from an owner.
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    /// @notice Tokens moved (from address(0) when minted).
    /// @param from sender.
    /// @param to recipient.
    /// @param value amount.
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice An allowance was set.
    /// @param owner owner of the tokens.
    /// @param spender spender.
    /// @param value new allowance.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice Creates the token with no supply.
    /// @param name_ token name.
    /// @param symbol_ token symbol.
    /// @param decimals_ number of decimals.
    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    /// @notice Mints tokens to an address; anyone may call it.
    /// @param to recipient.
    /// @param amount amount.
    function mint(address to, uint256 amount) external {
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    /// @notice Moves tokens from the caller; returns nothing, reverts on failure.
    /// @param to recipient.
    /// @param amount amount.
    function transfer(address to, uint256 amount) external {
        _move(msg.sender, to, amount);
    }

    /// @notice Moves tokens using an allowance; returns nothing, reverts on failure.
    /// @param from owner.
    /// @param to recipient.
    /// @param amount amount.
    function transferFrom(address from, address to, uint256 amount) external {
        allowance[from][msg.sender] -= amount;
        _move(from, to, amount);
    }

    /// @notice Sets the caller's allowance for a spender; returns nothing.
    /// @param spender spender.
    /// @param amount new allowance.
    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
    }

    function _move(address from, address to, uint256 amount) private {
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
